// Any process warning fails the test run (execa's fixtures-directory.js does the same).
process.on('warning', (warning) => {
  throw warning
})

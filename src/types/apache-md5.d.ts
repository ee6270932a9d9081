// Types for apache-md5 as an ESM import sees it. The package ships `src/apache-md5.d.ts`, but that file says
// `export default` while the code is CommonJS `module.exports = fn`; under NodeNext the default import is then typed
// as the module object and "has no call signatures". An ambient declaration takes precedence over the shipped one.
declare module 'apache-md5' {
  // The APR1 hash of password with the salt of an existing `$apr1$salt$digest` (or a random salt when omitted).
  // The password is hashed as one byte per character ('ascii' writes the low byte), so callers pass UTF-8 bytes
  // as a latin1 string.
  function aprMd5(password: string, salt?: string): string
  export = aprMd5
}

import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Hostile-script and end-to-end files start real servers and real processes; one file at a time
    // keeps CPU-bound tests from starving each other on a 2-core machine.
    fileParallelism: false,
  },
})

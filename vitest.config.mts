import { defineConfig } from 'vitest/config'

// Native addons must not share a worker: each test file runs in its own forked process.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['__test__/**/*.test.ts'],
    // One throwaway PostgreSQL server for the PostgreSQL backend's suites.
    globalSetup: ['__test__/support/pg-global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

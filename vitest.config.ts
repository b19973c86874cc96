import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Real servers start per file; two cores are plenty for a handful of files at once.
    pool: 'forks',
    maxWorkers: 2,
    env: { LOG_LEVEL: 'error' },
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});

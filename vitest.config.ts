import { defineConfig } from 'vitest/config';

// Integration tests start real processes (broker, Prometheus, Chromium) on a
// 2-core machine: run files one or two at a time and give them room.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});

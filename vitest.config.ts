import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The fast subset (`npm run test:unit`, vitest project `unit`): test files that start no child
 * process, no Kafka broker, no Prometheus and no Chromium (pure logic, in-process HTTP and OPC UA
 * servers at most). Every other file is in project `integration`; a new file lands there until
 * it is listed here. `npm test` runs both: unit first, then integration.
 */
export const UNIT_TESTS = [
  'calibrate-maths',
  'alert-llr-table',
  'alert-lifecycle',
  'alert-stage',
  'alert',
  'audit-tamper',
  'audit-trail',
  'bus',
  'card',
  'classify-model',
  'classify-png',
  'classify-preprocess',
  'crc32c',
  'config',
  'dashboards-contract',
  'identity-codecs',
  'ingest-files',
  'ingest-image',
  'ingest-ledger',
  'ingest-verdict',
  'frame-digest',
  'kafkajs-encoder',
  'metrics',
  'model-evaluation',
  'model-splits',
  'opcua-options',
  'opcua-security',
  'opcua-server',
  'report-figures',
  'simulator-frames',
  'simulator-stats',
  'web',
].map((name) => `test/${name}.test.ts`);

// Integration tests start real processes (broker, Prometheus, Chromium) on a
// 2-core machine: run files one or two at a time and give them room.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT_TESTS, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...UNIT_TESTS], sequence: { groupOrder: 1 } },
      },
    ],
  },
});

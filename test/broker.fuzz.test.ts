/**
 * Malformed input must never stop the broker: random bytes, truncated frames,
 * lying size prefixes, unknown api keys and versions (in process, with the
 * metrics), and, against the `crystalwatch broker` command, mutated copies of a
 * valid request of every version of every API built from the grammar (lengths
 * that lie, flipped bytes, truncations). Afterwards a kafkajs producer connected
 * before the abuse, kcat and a new kafkajs consumer are served, and SIGTERM
 * still stops the process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_HANDLERS } from '../src/broker/api/index.js';
import { BrokerProcess, startTestBroker, type TestBroker } from './helpers/broker.js';
import { encodeRequest, FUZZ_TOPIC, lengthMutations, prng, randomMutation, REQUEST_GRAMMAR, type EncodedRequest } from './helpers/broker-grammar.js';
import { body, buildBatch, kcat, produceBody, RawClient, terminateWithin } from './helpers/broker-wire.js';
import { waitFor } from './helpers/wait.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let server: TestBroker;
const registry = new Registry();

beforeAll(async () => {
  server = await startTestBroker({ messageMaxBytes: 1024 * 1024, registry });
});

afterAll(async () => {
  await server?.close();
});

async function assertHealthy(): Promise<void> {
  const client = await RawClient.open(server.address);
  const response = await client.request(18, 2, Buffer.alloc(0));
  client.close();
  expect(response).not.toBeNull();
  expect(response!.readInt16BE(4)).toBe(0);
}

describe('broker under malformed input', () => {
  it('answers ApiVersions with an unknown version in the v0 layout with UNSUPPORTED_VERSION', async () => {
    const client = await RawClient.open(server.address);
    const response = await client.request(18, 99, Buffer.alloc(0), true);
    expect(response!.readInt16BE(4)).toBe(35);
    expect(response!.readInt32BE(6)).toBeGreaterThan(10); // the api_keys array is still there
    client.close();
  });

  it('closes the connection on unknown api keys, unknown versions, bad sizes and truncated headers', async () => {
    const cases: Array<[string, (c: RawClient) => void]> = [
      [
        'unknown api key',
        (c) => {
          c.send(999, 0, Buffer.alloc(8));
        },
      ],
      [
        'Metadata v99',
        (c) => {
          c.send(3, 99, Buffer.alloc(8));
        },
      ],
      [
        'negative size',
        (c) => {
          c.writeRaw(Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3]));
        },
      ],
      [
        'size over the limit',
        (c) => {
          const b = Buffer.alloc(8);
          b.writeInt32BE(2_000_000_000);
          c.writeRaw(b);
        },
      ],
      [
        'header shorter than it says',
        (c) => {
          c.writeRaw(Buffer.from([0, 0, 0, 8, 0, 3, 0, 1, 0, 0, 0, 1]));
        },
      ],
      [
        'client id longer than the frame',
        (c) => {
          c.writeRaw(Buffer.from([0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff]));
        },
      ],
      [
        'array count larger than the frame',
        (c) => {
          c.send(3, 1, Buffer.from([0x7f, 0xff, 0xff, 0xff]));
        },
      ],
    ];
    for (const [name, send] of cases) {
      const client = await RawClient.open(server.address);
      send(client);
      const frame = await client.next();
      expect(frame, name).toBeNull();
      expect(client.closed, name).toBe(true);
    }
    await assertHealthy();
  });

  it('answers a batch with a bad CRC-32C with CORRUPT_MESSAGE and keeps the connection', async () => {
    const client = await RawClient.open(server.address);
    await client.request(
      3,
      6,
      body((w) => {
        w.array(['crc-check'], (x, t) => {
          x.string(t);
        }).boolean(true);
      }),
    );
    const batch = buildBatch([{ key: Buffer.from('k'), value: Buffer.from('the payload') }]);
    batch[batch.length - 3]! ^= 0x55;
    const response = await client.request(0, 7, produceBody('crc-check', 0, batch));
    expect(response!.readInt16BE(4 + 4 + 2 + 'crc-check'.length + 4 + 4)).toBe(2);
    const good = await client.request(0, 7, produceBody('crc-check', 0, buildBatch([{ value: Buffer.from('ok') }])));
    expect(good!.readInt16BE(4 + 4 + 2 + 'crc-check'.length + 4 + 4)).toBe(0);
    client.close();
    const value = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
      const metric = (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
      return metric?.value ?? 0;
    };
    expect(await value('crystalwatch_broker_produce_errors_total', { error_code: '2' })).toBe(1);
    expect(await value('crystalwatch_broker_produced_records_total')).toBe(1);
    expect(await value('crystalwatch_broker_requests_total', { api: 'Produce' })).toBe(2);
    expect(await value('crystalwatch_broker_connections_rejected_total', { reason: 'size' })).toBe(2);
    expect(await value('crystalwatch_broker_connections_rejected_total', { reason: 'unknown_api' })).toBe(1);
  });
});

/** Random mutations per API version, on top of every lying length of its grammar. */
const RANDOM_MUTATIONS = 24;
/** How long a mutated request may keep the connection's next answer waiting (a fetch or join that parsed into a long wait). */
const STALL_MS = 500;

type Outcome = 'answered' | 'closed' | 'stalled';

/** Sends one mutated request and an ApiVersions after it; the ApiVersions answer means the broker read past the mutation. */
async function tryMutation(address: string, request: EncodedRequest, mutated: Buffer): Promise<Outcome> {
  const client = await RawClient.open(address);
  try {
    client.send(request.apiKey, request.version, mutated, request.flexible);
    const probe = client.send(18, 0, Buffer.alloc(0));
    for (;;) {
      const frame = await client.next(STALL_MS).catch(() => undefined);
      if (frame === undefined) return 'stalled';
      if (frame === null) return 'closed';
      if (frame.readInt32BE(0) === probe) return 'answered';
    }
  } finally {
    client.close();
  }
}

async function inParallel<T>(items: T[], workers: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

describe('crystalwatch broker fuzzed with every API it answers', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-fuzz-'));
  const broker = new BrokerProcess(dataDir, ['--message-max-bytes', String(1024 * 1024)]);

  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("has a grammar for every API and version in the broker's table", () => {
    const table = API_HANDLERS.map((api) => `${api.key} ${api.name} v${api.minVersion}-${api.maxVersion}`);
    expect(REQUEST_GRAMMAR.map((api) => `${api.key} ${api.name} v${api.versions[0]}-${api.versions[1]}`)).toEqual(table);
  });

  it('answers a valid request of each version, survives lying lengths and damaged bytes in all of them, then serves kcat and kafkajs and stops on SIGTERM', async () => {
    const kafka = new Kafka({ brokers: [broker.address], clientId: 'fuzz-survivor', logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect(); // connected before the abuse starts
    await producer.send({ topic: 'survivor', messages: [{ key: 'before', value: 'x' }] });
    const setup = await RawClient.open(broker.address);
    await setup.request(
      3,
      6,
      body((w) => {
        w.array([FUZZ_TOPIC], (x, t) => {
          x.string(t);
        }).boolean(true);
      }),
    );
    setup.close();

    const random = prng(20261122);
    // Pure noise, in odd-sized writes.
    for (let i = 0; i < 40; i++) {
      const client = await RawClient.open(broker.address);
      for (let writes = 0; writes < 5; writes++) {
        client.writeRaw(Buffer.from(Array.from({ length: 1 + Math.floor(random() * 300) }, () => Math.floor(random() * 256))));
      }
      client.close();
    }

    const jobs: Array<{ request: EncodedRequest; kind: string; body: Buffer }> = [];
    for (const api of REQUEST_GRAMMAR) {
      for (let version = api.versions[0]; version <= api.versions[1]; version++) {
        const request = encodeRequest(api, version);
        // The unmutated request must be answered, or the grammar (and so the fuzzing) is wrong.
        const client = await RawClient.open(broker.address);
        const answer = await client.request(api.key, version, request.body, request.flexible);
        client.close();
        expect(answer, `a valid ${api.name} v${version} request was not answered`).not.toBeNull();
        for (const mutation of lengthMutations(request)) jobs.push({ request, ...mutation });
        for (let i = 0; i < RANDOM_MUTATIONS; i++) jobs.push({ request, ...randomMutation(request.body, random) });
      }
    }
    const outcomes: Record<Outcome, number> = { answered: 0, closed: 0, stalled: 0 };
    const closedByKind = new Map<string, number>();
    await inParallel(jobs, 8, async (job) => {
      const outcome = await tryMutation(broker.address, job.request, job.body);
      outcomes[outcome]++;
      if (outcome === 'closed') closedByKind.set(job.kind.split(' ')[0]!, (closedByKind.get(job.kind.split(' ')[0]!) ?? 0) + 1);
    });
    console.log(JSON.stringify({ fuzzedRequests: jobs.length, ...outcomes, closedByKind: Object.fromEntries(closedByKind) }));
    expect(outcomes.answered + outcomes.closed + outcomes.stalled).toBe(jobs.length);
    expect(outcomes.closed).toBeGreaterThan(jobs.length / 4); // lies were caught, not read as data
    expect(outcomes.answered).toBeGreaterThan(0);

    // librdkafka still produces and consumes.
    const lines = Array.from({ length: 200 }, (_, i) => `k${i}:after-fuzz-${i}`).join('\n') + '\n';
    expect((await kcat(broker.address, ['-P', '-t', 'after-fuzz', '-K:', '-X', 'acks=all'], lines)).code).toBe(0);
    const consumed = await kcat(broker.address, ['-C', '-t', 'after-fuzz', '-o', 'beginning', '-e', '-q', '-f', '%k\n']);
    expect(consumed.code).toBe(0);
    expect(consumed.stdout.trim().split('\n').sort()).toEqual(Array.from({ length: 200 }, (_, i) => `k${i}`).sort());

    // kafkajs: the producer connected before the abuse, and a new consumer group.
    await producer.send({ topic: 'survivor', messages: [{ key: 'after', value: 'y' }] });
    const consumer = kafka.consumer({ groupId: 'survivor-reader', sessionTimeout: 6000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['survivor', 'after-fuzz'], fromBeginning: true });
    const keys: string[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        keys.push(message.key!.toString());
      },
    });
    await waitFor(() => keys.length >= 202, { timeout: 30_000, message: 'kafkajs to read the 2 survivor records and the 200 kcat records' });
    await consumer.disconnect();
    await producer.disconnect();
    expect(keys.filter((k) => k === 'before' || k === 'after').sort()).toEqual(['after', 'before']);

    const exit = await terminateWithin(broker.child!, 3000);
    expect(exit, 'the broker did not exit within 3 s of SIGTERM').not.toBeNull();
    expect(exit!.code).toBe(0);
  });
});

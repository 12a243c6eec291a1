/**
 * A real embedded broker in a temp folder with a kafkajs client on it, for tests that
 * drive a stage through Kafka; and deterministic noise images whose bytes differ by seed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import sharp from 'sharp';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { createKafka } from '../../src/bus/kafka.js';
import { xorshift32 } from '../../src/model/rng.js';

export interface TestBus {
  /** A temp folder for the test's files; the broker's data lives in `<dir>/broker`. */
  dir: string;
  broker: Broker;
  kafka: Kafka;
  /** Closes the broker and removes `dir`. */
  close(): Promise<void>;
}

export async function startTestBus(prefix: string): Promise<TestBus> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const broker = await startBroker({ port: 0, dataDir: join(dir, 'broker') });
  return {
    dir,
    broker,
    kafka: createKafka({ brokers: [broker.address] }),
    async close() {
      await broker.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Grey xorshift noise: PNGs of realistic size whose bytes differ for every seed. */
export function noise(width: number, height: number, seed: number): Buffer {
  const raw = Buffer.alloc(width * height);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < raw.length; i += 1) {
    s = xorshift32(s);
    raw[i] = s & 0xff;
  }
  return raw;
}

export const noisePng = (width: number, height: number, seed: number): Promise<Buffer> =>
  sharp(noise(width, height, seed), { raw: { width, height, channels: 1 } })
    .png({ compressionLevel: 1 })
    .toBuffer();

/**
 * CRC-32C: the broker's checker (native @node-rs/crc32 when it loads, else WebAssembly, else
 * JS) and kafkajs' produce path with the native one (src/bus/crc32c.ts): known answers,
 * agreement on pseudo-random buffers and views, and the fallbacks when the native package
 * is missing or wrong.
 */
import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32c, crc32cImplementation, crc32cJs, crc32cWithoutNative, loadNativeCrc32c } from '../src/broker/protocol/crc32c.js';
import { chooseCrc32 } from '../src/ingest/image.js';

const require = createRequire(import.meta.url);

/** Deterministic pseudo-random bytes (xorshift32). */
function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 1) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

// RFC 3720 B.4 and the usual check value.
const KNOWN: Array<[string, Buffer, number]> = [
  ['"123456789"', Buffer.from('123456789'), 0xe3069283],
  ['32 zero bytes', Buffer.alloc(32), 0x8a9136aa],
  ['32 bytes of 0xff', Buffer.alloc(32, 0xff), 0x62a8ab43],
  ['32 ascending bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
  ['nothing', Buffer.alloc(0), 0],
];

describe('CRC-32C of the broker', () => {
  it.each(KNOWN)('gives the known answer for %s, in every implementation', (_name, input, expected) => {
    expect(crc32c(input)).toBe(expected);
    expect(crc32cJs(input)).toBe(expected);
    expect(crc32cWithoutNative(input)).toBe(expected);
  });

  it('agrees with the JS loop on pseudo-random buffers, lengths and offsets (a record batch is checked from byte 21)', () => {
    const big = bytes(1_200_000, 7); // a frame-sized batch
    for (const [start, end] of [
      [0, big.length],
      [21, big.length],
      [21, 533],
      [1, 2],
      [13, 13],
      [600_001, 1_199_999],
    ] as const) {
      const expected = crc32cJs(big, start, end);
      expect(crc32c(big, start, end), `bytes ${start}..${end}`).toBe(expected);
      expect(crc32cWithoutNative(big, start, end), `bytes ${start}..${end} without native`).toBe(expected);
    }
    for (let seed = 1; seed <= 40; seed += 1) {
      const b = bytes(seed * 97 + (seed % 9), seed);
      expect(crc32c(b), `seed ${seed}`).toBe(crc32cJs(b));
    }
  });

  it('uses the native CRC where its binary loads, and says so', () => {
    expect(crc32cImplementation).toBe(loadNativeCrc32c() ? 'native' : 'wasm');
  });

  it('falls back when @node-rs/crc32 is missing, has no crc32c, or gives wrong answers', () => {
    const missing = () => {
      throw Object.assign(new Error("Cannot find module '@node-rs/crc32-linux-x64-gnu'"), { code: 'MODULE_NOT_FOUND' });
    };
    expect(loadNativeCrc32c(missing)).toBeUndefined();
    expect(loadNativeCrc32c(() => ({}))).toBeUndefined();
    expect(loadNativeCrc32c(() => ({ crc32c: () => 0 }))).toBeUndefined();
    // Right on whole buffers but wrong on views with an offset (the self-check has one).
    expect(loadNativeCrc32c(() => ({ crc32c: (b: Uint8Array) => crc32cJs(Buffer.from(b.buffer, 0, b.length)) }))).toBeUndefined();
    const real = loadNativeCrc32c(require);
    if (real) expect(real(Buffer.from('123456789'))).toBe(0xe3069283);
  });
});

describe("kafkajs' produce path with the native CRC-32C", () => {
  const fresh = async () => {
    vi.resetModules(); // the decision is made once per module instance
    return import('../src/bus/crc32c.js');
  };

  it('keeps kafkajs as it is, with the reason, when the native package is missing or disagrees', async () => {
    const crcPath = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js');
    const kafkajsOwn: unknown = require(crcPath);
    const missing = (await fresh()).useNativeCrc32cInKafkajs(() => {
      throw new Error("Cannot find module '@node-rs/crc32'");
    });
    expect(missing).toEqual({ implementation: 'kafkajs-js', reason: expect.stringContaining('@node-rs/crc32 did not load') });
    const lying = (await fresh()).useNativeCrc32cInKafkajs(() => ({ crc32c: (b: Uint8Array) => crc32cJs(b) ^ 1 }));
    expect(lying).toEqual({ implementation: 'kafkajs-js', reason: expect.stringContaining('known vector') });
    expect(require.cache[crcPath]?.exports).toBe(kafkajsOwn); // nothing replaced
  });

  it('encodes record batches whose CRC the broker accepts, with the native CRC once kafka.ts is loaded', async () => {
    vi.resetModules();
    const { kafkajsCrc32c } = await import('../src/bus/kafka.js');
    const native = loadNativeCrc32c(require);
    expect(kafkajsCrc32c.implementation).toBe(native ? 'native' : 'kafkajs-js');
    const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
    const value = bytes(1_100_000, 3);
    if (native) expect(kafkajsCrc(value)).toBe(crc32cJs(value));
    // kafkajs' own encoder, as the producer calls it: the CRC it writes checks out.
    const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
      RecordBatch: (o: { records: unknown[] }) => Promise<{ buffer: Buffer }>;
    };
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (o: { key: Buffer; value: Buffer; headers: object }) => unknown;
    const encoded = (await RecordBatch({ records: [Record({ key: Buffer.from('cam-1'), value, headers: {} })] })).buffer;
    // baseOffset INT64, length INT32, leaderEpoch INT32, magic INT8 @16, crc UINT32 @17 over bytes 21..: the log's layout.
    expect(encoded.readInt8(16)).toBe(2);
    expect(encoded.readInt32BE(8)).toBe(encoded.length - 12);
    expect(encoded.readUInt32BE(17)).toBe(crc32cJs(encoded, 21, encoded.length));
    // Too late for a second instance: the encoder is loaded now, and keeps what it holds.
    const late = (await fresh()).useNativeCrc32cInKafkajs();
    expect(late.implementation).toBe('kafkajs-js');
    if (native) expect(late.reason).toContain('loaded before the override');
  });
});

describe('CRC-32 of PNG chunks at ingest', () => {
  it("is zlib's answer, natively where the binary loads, and zlib's own when it is missing or wrong", () => {
    const crc32 = chooseCrc32();
    for (let seed = 1; seed <= 20; seed += 1) {
      const b = bytes(seed * 613, seed);
      expect(crc32(b.subarray(seed)) >>> 0, `seed ${seed}`).toBe(zlibCrc32(b.subarray(seed)));
    }
    expect(crc32(Buffer.from('123456789')) >>> 0).toBe(0xcbf43926);
    const missing = () => {
      throw new Error("Cannot find module '@node-rs/crc32'");
    };
    expect(chooseCrc32(missing)).toBe(zlibCrc32);
    expect(chooseCrc32(() => ({ crc32: () => 0 }))).toBe(zlibCrc32);
  });
});

/**
 * kafkajs' Encoder growing into unzeroed buffers (src/bus/kafkajs-encoder.ts): the bytes it
 * produces are the same as with kafkajs' own zero-filled growth, for any sequence of writes.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { kafkajsEncoder } from '../src/bus/kafka.js';
import { kafkajsEnsureAvailable } from '../src/bus/kafkajs-encoder.js';

const require = createRequire(import.meta.url);

interface Encoder {
  writeInt8(v: number): Encoder;
  writeInt16(v: number): Encoder;
  writeInt32(v: number): Encoder;
  writeInt64(v: number): Encoder;
  writeVarInt(v: number): Encoder;
  writeString(v: string): Encoder;
  writeVarIntString(v: string): Encoder;
  writeBytes(v: Buffer | null): Encoder;
  writeVarIntBytes(v: Buffer): Encoder;
  writeEncoder(v: Encoder): Encoder;
  buffer: Buffer;
}
const Encoder = require('kafkajs/src/protocol/encoder.js') as { new (size?: number): Encoder; prototype: { ensureAvailable: unknown } };

/** The same pseudo-random writes, nested encoders and 1 MB values included. */
function encode(seed: number): Buffer {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const outer = new Encoder();
  for (let i = 0; i < 60; i += 1) {
    const inner = new Encoder(next() % 64);
    switch (next() % 6) {
      case 0:
        inner.writeInt8(next() % 128).writeInt16(next() % 30000);
        break;
      case 1:
        inner.writeInt32(next() | 0).writeInt64(next());
        break;
      case 2:
        inner.writeVarInt(next() % 100000).writeString(`ünïcode-${next()}`);
        break;
      case 3:
        inner.writeVarIntString(`cam-${next() % 8}`).writeBytes(null);
        break;
      case 4:
        inner.writeBytes(Buffer.alloc(next() % 5000, next() & 0xff));
        break;
      default:
        inner.writeVarIntBytes(Buffer.alloc(i === 30 ? 1_100_000 : next() % 70000, 0xa5));
    }
    outer.writeEncoder(inner);
  }
  return new Encoder().writeInt32(outer.buffer.length).writeEncoder(outer).buffer;
}

describe("kafkajs' Encoder with unzeroed growth", () => {
  it('is installed for the kafkajs this was written against', () => {
    expect(kafkajsEncoder).toEqual({ growth: 'unzeroed' });
    expect(kafkajsEnsureAvailable).toBeTypeOf('function');
  });

  it('writes exactly the bytes of kafkajs own zero-filled growth', () => {
    const patched = Encoder.prototype.ensureAvailable;
    for (const seed of [1, 2, 3, 99, 12345]) {
      const unzeroed = encode(seed);
      Encoder.prototype.ensureAvailable = kafkajsEnsureAvailable;
      let zeroed: Buffer;
      try {
        zeroed = encode(seed);
      } finally {
        Encoder.prototype.ensureAvailable = patched;
      }
      expect(unzeroed.length, `seed ${seed}`).toBe(zeroed.length);
      expect(unzeroed.equals(zeroed), `seed ${seed}`).toBe(true);
    }
  });
});

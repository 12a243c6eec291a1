/**
 * kafkajs' Encoder without zero-filling the buffers it grows into.
 *
 * A produced record is copied through about eight kafkajs Encoders (record, batch body, batch,
 * records field, partition, topic, request, size prefix), and each one that receives a 1 MB frame
 * grows to the next power of two, 2 MiB, with `Buffer.alloc`, which zero-fills it: 16 MiB of
 * memset per frame, ~40 % of kafkajs' encoding CPU once the CRC is native (bench figures in
 * src/bus/README.md). The zeros are never read: an Encoder hands out `buf.slice(0, offset)` only,
 * and every write fills the bytes it advances `offset` over, so growing with `Buffer.allocUnsafe`
 * sends the same bytes (test/kafkajs-encoder.test.ts compares both byte for byte).
 *
 * `useUnzeroedKafkajsEncoder` replaces `Encoder.prototype.ensureAvailable` only when its source is
 * the one this was written against (kafkajs 2.2), so a kafkajs release that changes it is left as it is.
 */
import { createRequire } from 'node:module';

interface EncoderLike {
  offset: number;
  buf: Buffer;
}
interface EncoderClass {
  prototype: { ensureAvailable: (this: EncoderLike, length: number) => void };
  nextPowerOfTwo: (value: number) => number;
}

/** The kafkajs release whose Encoder was read (every method writes the bytes it advances over). */
const KAFKAJS_VERSION = '2.2.4';

/** kafkajs 2.2's ensureAvailable, whitespace removed. */
const EXPECTED_SOURCE =
  'ensureAvailable(length){if(this.offset+length>this.buf.length){constnewLength=Encoder.nextPowerOfTwo(this.offset+length)constnewBuffer=Buffer.alloc(newLength)this.buf.copy(newBuffer,0,0,this.offset)this.buf=newBuffer}}';

export interface KafkajsEncoderOutcome {
  growth: 'unzeroed' | 'kafkajs';
  reason?: string;
}

let outcome: KafkajsEncoderOutcome | undefined;
/** kafkajs' own ensureAvailable, kept for the test that compares the bytes of both. */
export let kafkajsEnsureAvailable: EncoderClass['prototype']['ensureAvailable'] | undefined;

/** Idempotent: the first call decides (see the top of this file). */
export function useUnzeroedKafkajsEncoder(): KafkajsEncoderOutcome {
  if (outcome) return outcome;
  let Encoder: EncoderClass;
  const require = createRequire(import.meta.url);
  // Unzeroed growth is safe only while every Encoder method writes each byte it moves past: true of
  // the one release this was read against. Another version keeps kafkajs' own, whatever its source.
  const version = (require('kafkajs/package.json') as { version?: string }).version;
  if (version !== KAFKAJS_VERSION)
    return (outcome = { growth: 'kafkajs', reason: `kafkajs ${version} is not ${KAFKAJS_VERSION}, the release this was read against; left as it is` });
  try {
    Encoder = require('kafkajs/src/protocol/encoder.js') as EncoderClass;
  } catch {
    return (outcome = { growth: 'kafkajs', reason: 'this kafkajs has no src/protocol/encoder.js; left as it is' });
  }
  const own = Encoder.prototype?.ensureAvailable;
  if (typeof own !== 'function' || typeof Encoder.nextPowerOfTwo !== 'function' || own.toString().replace(/\s+/g, '') !== EXPECTED_SOURCE) {
    return (outcome = { growth: 'kafkajs', reason: "kafkajs' Encoder.ensureAvailable is not the one this was written for; left as it is" });
  }
  kafkajsEnsureAvailable = own;
  const nextPowerOfTwo = Encoder.nextPowerOfTwo;
  Encoder.prototype.ensureAvailable = function ensureAvailable(this: EncoderLike, length: number): void {
    if (this.offset + length > this.buf.length) {
      const grown = Buffer.allocUnsafe(nextPowerOfTwo(this.offset + length)); // bytes past offset are never read
      this.buf.copy(grown, 0, 0, this.offset);
      this.buf = grown;
    }
  };
  return (outcome = { growth: 'unzeroed' });
}

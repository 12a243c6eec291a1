/**
 * kafkajs' Encoder keeping large values by reference instead of copying them.
 *
 * kafkajs builds a produce request from nested Encoders (record, record with its length, batch
 * body, batch, batch with its offset, partition, topic, request payload, request with its size),
 * and every level copies the level below into a buffer it grows by doubling: a 1.2 MB frame was
 * copied ten times into ten new 2 MiB buffers per send (bench/ingest-bytes.ts: with garbage
 * collection, a third of ingest's CPU). Here an Encoder is a list of chunks plus kafkajs' own
 * small tail buffer: a Buffer of `LARGE_CHUNK_BYTES` or more, or another Encoder's chunks, are
 * appended by reference, and bytes are joined only where kafkajs reads `encoder.buffer` — the
 * record batch body for its CRC, the batch for its length-prefixed bytes, and the whole request
 * for the socket: three copies of a frame instead of ten, each into a buffer of the exact size.
 * (The tail still grows by kafkajs' own zero-filled doubling: only small values go into it now.)
 *
 * Safe because an Encoder only ever appends: the bytes before `offset` of a buffer are never
 * written again, so a view of them stays valid; a chunk taken from another Encoder is frozen by
 * starting a fresh tail. The bytes sent are the same as kafkajs' own Encoder sends
 * (test/kafkajs-encoder.test.ts compares both byte for byte, nested encoders and 1 MB values
 * included, and a real produce through the broker).
 *
 * `useChunkedKafkajsEncoder` patches `Encoder.prototype` only when encoder.js is, byte for byte,
 * the file this was written against (kafkajs 2.2.4, SHA-256 below); any other kafkajs is left as
 * it is, with the reason.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** Buffers of this size or more are appended by reference; smaller ones are copied, as kafkajs does. */
export const LARGE_CHUNK_BYTES = 16 * 1024;

/** The kafkajs release whose Encoder was read, and the SHA-256 of its src/protocol/encoder.js. */
const KAFKAJS_VERSION = '2.2.4';
const ENCODER_SHA256 = '9977889e184a9e910e4f6098c36ec6a0ca36c183aa6ead0f24191b6aa1c9a777';

/** The state of a kafkajs Encoder, and what this adds to it. */
interface ChunkedEncoder {
  buf: Buffer;
  offset: number;
  /** Bytes before the tail (`buf[0, offset)`), in order; absent until the first large append. */
  chunks?: Buffer[];
  chunkBytes?: number;
  writeInt32(value: number): ChunkedEncoder;
  writeBufferInternal(buffer: Buffer): void;
  writeEncoder(value: ChunkedEncoder): ChunkedEncoder;
}

interface EncoderPrototype {
  writeBufferInternal(this: ChunkedEncoder, buffer: Buffer): void;
  writeInt32(this: ChunkedEncoder, value: number): ChunkedEncoder;
  writeBytes(this: ChunkedEncoder, value: unknown): ChunkedEncoder;
  writeEncoder(this: ChunkedEncoder, value: ChunkedEncoder): ChunkedEncoder;
  writeEncoderArray(this: ChunkedEncoder, value: ChunkedEncoder[]): ChunkedEncoder;
  size(this: ChunkedEncoder): number;
}

interface EncoderClass {
  prototype: EncoderPrototype;
}

export interface KafkajsEncoderOutcome {
  encoder: 'chunked' | 'kafkajs';
  reason?: string;
}

let outcome: KafkajsEncoderOutcome | undefined;

/** kafkajs' own methods, as they were before the patch: for the test that compares the bytes of both. */
export let kafkajsOwnEncoder: PropertyDescriptorMap | undefined;

/** The methods and the `buffer` getter that make an Encoder chunked. */
function chunkedMethods(own: EncoderPrototype): PropertyDescriptorMap {
  /** Ends the tail as a chunk (the old buffer is never written again) and starts an empty one. */
  /** A new tail: the old buffer's bytes may be held by reference (here or by a parent encoder), so it is never reused. */
  const freshTail = (e: ChunkedEncoder) => {
    e.buf = Buffer.allocUnsafe(64); // bytes past offset are never read
    e.offset = 0;
  };
  const seal = (e: ChunkedEncoder) => {
    const chunks = (e.chunks ??= []);
    if (e.offset > 0) {
      chunks.push(e.buf.subarray(0, e.offset));
      e.chunkBytes = (e.chunkBytes ?? 0) + e.offset;
      freshTail(e);
    }
    return chunks;
  };
  const append = (e: ChunkedEncoder, chunk: Buffer) => {
    seal(e).push(chunk);
    e.chunkBytes = (e.chunkBytes ?? 0) + chunk.length;
  };
  const methods: Partial<EncoderPrototype> = {
    writeBufferInternal(buffer) {
      if (buffer.length >= LARGE_CHUNK_BYTES) append(this, buffer);
      else own.writeBufferInternal.call(this, buffer);
    },
    writeBytes(value) {
      // kafkajs' writeBytes makes room for the whole value in the tail first: not for a large one.
      if (!Buffer.isBuffer(value) || value.length < LARGE_CHUNK_BYTES) return own.writeBytes.call(this, value);
      this.writeInt32(value.length);
      append(this, value);
      return this;
    },
    writeEncoder(value) {
      if (value == null || !Buffer.isBuffer(value.buf)) throw new Error('value should be an instance of Encoder');
      for (const chunk of value.chunks ?? []) append(this, chunk);
      // The other encoder's tail may still grow: a view of its bytes so far is stable, as above.
      if (value.offset > 0) this.writeBufferInternal(value.buf.subarray(0, value.offset));
      return this;
    },
    writeEncoderArray(value) {
      if (!Array.isArray(value) || value.some((v) => v == null || !Buffer.isBuffer(v.buf))) {
        throw new Error('all values should be an instance of Encoder[]');
      }
      for (const v of value) this.writeEncoder(v);
      return this;
    },
    size() {
      return (this.chunkBytes ?? 0) + this.offset;
    },
  };
  const descriptors: PropertyDescriptorMap = {};
  for (const [name, value] of Object.entries(methods)) descriptors[name] = { value, writable: true, configurable: true };
  descriptors.buffer = {
    configurable: true,
    get(this: ChunkedEncoder): Buffer {
      if (!this.chunks) return this.buf.subarray(0, this.offset);
      // Joined before and nothing written since (kafkajs' connection reads a request's buffer twice).
      if (this.offset === 0 && this.chunks.length === 1) return this.chunks[0]!;
      // Joined once, then kept as the only chunk: a second read (above), or this encoder written
      // into another, costs no copy.
      const joined = Buffer.concat([...this.chunks, this.buf.subarray(0, this.offset)], (this.chunkBytes ?? 0) + this.offset);
      this.chunks = [joined];
      this.chunkBytes = joined.length;
      freshTail(this);
      return joined;
    },
  };
  return descriptors;
}

/**
 * Why kafkajs' Encoder must be left as it is, or undefined when it is the one this was written
 * against: the kafkajs release and the SHA-256 of its src/protocol/encoder.js.
 */
export function encoderRefusal(version: string | undefined, encoderSha256: string | undefined): string | undefined {
  if (version !== KAFKAJS_VERSION) return `kafkajs ${version} is not ${KAFKAJS_VERSION}, the release this was read against; left as it is`;
  if (encoderSha256 !== ENCODER_SHA256) return `its src/protocol/encoder.js is not the one this was written for (SHA-256 ${encoderSha256}); left as it is`;
  return undefined;
}

/** Idempotent: the first call decides (see the top of this file). */
export function useChunkedKafkajsEncoder(): KafkajsEncoderOutcome {
  if (outcome) return outcome;
  const require = createRequire(import.meta.url);
  let version: string | undefined;
  let file: string | undefined;
  let digest: string | undefined;
  try {
    version = (require('kafkajs/package.json') as { version?: string }).version;
    file = require.resolve('kafkajs/src/protocol/encoder.js');
    digest = createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    // A kafkajs whose package exports hide these files: not the one this was written for.
  }
  const refusal = encoderRefusal(version, digest);
  if (refusal || !file) return (outcome = { encoder: 'kafkajs', reason: refusal ?? 'kafkajs has no src/protocol/encoder.js; left as it is' });
  const Encoder = require(file) as EncoderClass;
  const proto = Encoder.prototype;
  const own = { writeBufferInternal: proto.writeBufferInternal, writeBytes: proto.writeBytes } as EncoderPrototype;
  const patched = chunkedMethods(own);
  kafkajsOwnEncoder = {};
  for (const name of Object.keys(patched)) kafkajsOwnEncoder[name] = Object.getOwnPropertyDescriptor(proto, name)!;
  Object.defineProperties(proto, patched);
  return (outcome = { encoder: 'chunked' });
}

/**
 * kafkajs' produce path with a native CRC-32C.
 *
 * kafkajs computes the CRC-32C of every record batch it produces in JavaScript
 * (`kafkajs/src/protocol/recordBatch/crc32C`): ~2 ms of CPU per 1 MB frame, the biggest
 * single item of ingest's CPU profile. `@node-rs/crc32` computes the same checksum with
 * the CPU's CRC instructions (~0.1 ms per MB). kafkajs has no option for it, so
 * `useNativeCrc32cInKafkajs` replaces the export of kafkajs' CRC module in Node's module
 * cache, which kafkajs' record batch encoder (`recordBatch/v0`) reads once, when it is
 * first required (at the first produce request). It does so only when all of this holds,
 * and otherwise leaves kafkajs as it is, saying why:
 * - the native binary loads (its per-platform package is an optional dependency, so a
 *   platform without one still installs);
 * - it gives kafkajs' own answer for known vectors and for pseudo-random buffers of many
 *   lengths and offsets;
 * - the encoder has not been loaded yet (it would keep the JS function it already holds).
 * The broker checks every batch's CRC whatever computed it (CORRUPT_MESSAGE otherwise),
 * so a wrong checksum could never be stored, only refused.
 */
import { createRequire } from 'node:module';

type Crc32c = (input: Uint8Array, initialState?: number) => number;

export interface KafkajsCrc32cOutcome {
  /** What kafkajs' produce path computes CRC-32C with now. */
  implementation: 'native' | 'kafkajs-js';
  /** Why the native one is not used, when it is not. */
  reason?: string;
}

const CRC_MODULE = 'kafkajs/src/protocol/recordBatch/crc32C/index.js';
const ENCODER_MODULE = 'kafkajs/src/protocol/recordBatch/v0/index.js';

/** Inputs the native function must agree with kafkajs' on: known answers, then pseudo-random buffers. */
function agreementFailure(native: Crc32c, own: (b: Buffer) => number): string | undefined {
  const known: Array<[Buffer, number]> = [
    [Buffer.from('123456789'), 0xe3069283],
    [Buffer.alloc(32), 0x8a9136aa],
    [Buffer.alloc(32, 0xff), 0x62a8ab43],
    [Buffer.alloc(0), 0],
  ];
  for (const [input, expected] of known) {
    if (own(input) !== expected) return `kafkajs' own CRC-32C gives ${own(input)} for a known vector, not ${expected}`;
    if (native(input) >>> 0 !== expected) return `the native CRC-32C gives ${native(input) >>> 0} for a known vector, not ${expected}`;
  }
  const random = Buffer.allocUnsafe(4099);
  let s = 0x9e3779b9;
  for (let i = 0; i < random.length; i += 1) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    random[i] = s & 0xff;
  }
  for (const [start, end] of [
    [0, 4099],
    [1, 4099],
    [7, 1031],
    [61, 62],
    [3, 3],
  ] as const) {
    const view = random.subarray(start, end);
    if (native(view) >>> 0 !== own(view)) return `the native CRC-32C disagrees with kafkajs' on bytes ${start}..${end} of the probe`;
  }
  return undefined;
}

let outcome: KafkajsCrc32cOutcome | undefined;

/**
 * Makes kafkajs compute produce CRCs natively when that is safe (see the top of this file);
 * idempotent: the first call decides. `load` replaces the loading of `@node-rs/crc32` in tests.
 */
export function useNativeCrc32cInKafkajs(load?: (id: string) => unknown): KafkajsCrc32cOutcome {
  if (outcome) return outcome;
  outcome = decide(load);
  return outcome;
}

function decide(load: ((id: string) => unknown) | undefined): KafkajsCrc32cOutcome {
  const require = createRequire(import.meta.url);
  let native: Crc32c | undefined;
  try {
    native = ((load ?? require)('@node-rs/crc32') as { crc32c?: Crc32c }).crc32c;
  } catch (err) {
    return { implementation: 'kafkajs-js', reason: `@node-rs/crc32 did not load (${(err as Error).message.split('\n')[0]}); kafkajs keeps its JS CRC-32C` };
  }
  if (typeof native !== 'function') return { implementation: 'kafkajs-js', reason: '@node-rs/crc32 has no crc32c function; kafkajs keeps its JS CRC-32C' };
  let crcPath: string;
  let encoderPath: string;
  try {
    crcPath = require.resolve(CRC_MODULE);
    encoderPath = require.resolve(ENCODER_MODULE);
  } catch {
    return { implementation: 'kafkajs-js', reason: `this kafkajs has no ${CRC_MODULE} (its layout changed); it keeps its own CRC-32C` };
  }
  if (require.cache[encoderPath]) {
    return { implementation: 'kafkajs-js', reason: "kafkajs' record batch encoder was loaded before the override; it keeps its JS CRC-32C" };
  }
  const own = require(crcPath) as (b: Buffer) => number;
  const cached = require.cache[crcPath];
  if (typeof own !== 'function' || !cached)
    return { implementation: 'kafkajs-js', reason: `${CRC_MODULE} does not export a function; kafkajs keeps its own CRC-32C` };
  const failure = agreementFailure(native, own);
  if (failure) return { implementation: 'kafkajs-js', reason: `${failure}; kafkajs keeps its JS CRC-32C` };
  const nativeCrc = native;
  cached.exports = (buffer: Buffer) => nativeCrc(buffer) >>> 0; // kafkajs' contract: the unsigned CRC of the whole buffer
  return { implementation: 'native' };
}

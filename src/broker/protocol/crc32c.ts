/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka
 * record batch v2. Slicing-by-8: eight table lookups per 8 input bytes.
 *
 * Every produced byte is checked once, so the speed matters (1 MB frames): the
 * native `@node-rs/crc32` (SSE 4.2 / ARMv8 CRC instructions, prebuilt per
 * platform) is used when its binary loads and agrees with the JS loop on test
 * vectors; otherwise big inputs run the same algorithm in a tiny WebAssembly
 * module assembled below (no toolchain, no dependency; it copies the input
 * into its memory), and small inputs, or runtimes without WebAssembly, the JS
 * loop. `crc32cImplementation` says which one is in use.
 */
import { createRequire } from 'node:module';

const POLY = 0x82f63b78;
const TABLES: Uint32Array[] = [];

(function buildTables() {
  const base = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    base[n] = c >>> 0;
  }
  TABLES.push(base);
  for (let t = 1; t < 8; t++) {
    const table = new Uint32Array(256);
    const previous = TABLES[t - 1]!;
    for (let n = 0; n < 256; n++) table[n] = (previous[n]! >>> 8) ^ base[previous[n]! & 0xff]!;
    TABLES.push(table);
  }
})();

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array]; // built above, eight of them

/** Below this many bytes the copy into WebAssembly memory costs more than it saves. */
const WASM_MIN_BYTES = 512;
const TABLE_BYTES = 8 * 256 * 4;
const PAGE = 65536;

function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/**
 * (func (param $ptr i32) (param $len i32) (param $crc i32) (result i32)) over
 * memory laid out as [T0..T7: 8 KiB of tables][input]; the same slicing-by-8
 * as crc32cJs, then a byte-wise tail.
 */
function assembleCrcModule(): Uint8Array<ArrayBuffer> {
  const [PTR, LEN, CRC, END8, END, A, B] = [0, 1, 2, 3, 4, 5, 6];
  const get = (i: number): number[] => [0x20, i];
  const set = (i: number): number[] => [0x21, i];
  const constant = (v: number): number[] => [0x41, ...(v === -1 ? [0x7f] : v === -8 ? [0x78] : v === 255 ? [0xff, 0x01] : [v])];
  const XOR = 0x73,
    AND = 0x71,
    ADD = 0x6a,
    SHL = 0x74,
    SHR_U = 0x76,
    GE_U = 0x4f;
  const load = (offset: number, align = 2): number[] => [0x28, align, ...unsignedLeb(offset)];
  const lookup = (local: number, shift: number, table: number): number[] => [
    ...get(local),
    ...(shift ? [...constant(shift), SHR_U] : []),
    ...(shift === 24 ? [] : [...constant(255), AND]),
    ...constant(2),
    SHL,
    ...load(table * 1024),
  ];
  const body = [
    ...get(CRC),
    ...constant(-1),
    XOR,
    ...set(CRC),
    ...get(PTR),
    ...get(LEN),
    ADD,
    ...set(END),
    ...get(PTR),
    ...get(LEN),
    ...constant(-8),
    AND,
    ADD,
    ...set(END8),
    0x02,
    0x40,
    0x03,
    0x40,
    ...get(PTR),
    ...get(END8),
    GE_U,
    0x0d,
    1,
    ...get(PTR),
    ...load(0, 0),
    ...get(CRC),
    XOR,
    ...set(A),
    ...get(PTR),
    ...load(4, 0),
    ...set(B),
    ...lookup(A, 0, 7),
    ...lookup(A, 8, 6),
    XOR,
    ...lookup(A, 16, 5),
    XOR,
    ...lookup(A, 24, 4),
    XOR,
    ...lookup(B, 0, 3),
    XOR,
    ...lookup(B, 8, 2),
    XOR,
    ...lookup(B, 16, 1),
    XOR,
    ...lookup(B, 24, 0),
    XOR,
    ...set(CRC),
    ...get(PTR),
    ...constant(8),
    ADD,
    ...set(PTR),
    0x0c,
    0,
    0x0b,
    0x0b,
    0x02,
    0x40,
    0x03,
    0x40,
    ...get(PTR),
    ...get(END),
    GE_U,
    0x0d,
    1,
    ...get(CRC),
    ...get(PTR),
    0x2d,
    0,
    0,
    XOR,
    ...constant(255),
    AND,
    ...constant(2),
    SHL,
    ...load(0),
    ...get(CRC),
    ...constant(8),
    SHR_U,
    XOR,
    ...set(CRC),
    ...get(PTR),
    ...constant(1),
    ADD,
    ...set(PTR),
    0x0c,
    0,
    0x0b,
    0x0b,
    ...get(CRC),
    ...constant(-1),
    XOR,
    0x0b,
  ];
  const func = [0x01, 0x04, 0x7f, ...body];
  const code = [0x01, ...unsignedLeb(func.length), ...func];
  const section = (id: number, content: number[]): number[] => [id, ...unsignedLeb(content.length), ...content];
  const name = (text: string): number[] => [text.length, ...Buffer.from(text)];
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f]),
    ...section(3, [0x01, 0x00]),
    ...section(5, [0x01, 0x00, 0x01]),
    ...section(7, [0x02, ...name('crc'), 0x00, 0x00, ...name('mem'), 0x02, 0x00]),
    ...section(10, code),
  ]);
}

/** Node's WebAssembly global, as far as this file uses it: TypeScript types it only in its DOM lib, which the Node code does not load. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}

interface WasmCrc {
  crc: (ptr: number, len: number, crc: number) => number;
  memory: WasmMemory;
  view: Uint8Array;
}

const wasm: WasmCrc | undefined = (() => {
  try {
    const { Module, Instance } = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const instance = new Instance(new Module(assembleCrcModule()));
    const memory = instance.exports.mem as WasmMemory;
    const view = new Uint8Array(memory.buffer);
    for (let t = 0; t < 8; t++) new Uint32Array(memory.buffer, t * 1024, 256).set(TABLES[t]!);
    const result: WasmCrc = { crc: instance.exports.crc as WasmCrc['crc'], memory, view };
    // Self-check against the JS loop before trusting it.
    const probe = Buffer.from('123456789abcdefghijklmnopqrstuvwxyz'.repeat(40));
    view.set(probe, TABLE_BYTES);
    if (result.crc(TABLE_BYTES, probe.length, 0) >>> 0 !== crc32cJs(probe, 0, probe.length)) return undefined;
    return result;
  } catch {
    return undefined;
  }
})();

type NativeCrc32c = (input: Uint8Array, initialState?: number) => number;

/** Known answers: RFC 3720 B.4 and the usual check value; `load` is replaceable for tests. */
export function loadNativeCrc32c(load: (id: string) => unknown = createRequire(import.meta.url)): NativeCrc32c | undefined {
  try {
    const native = (load('@node-rs/crc32') as { crc32c?: NativeCrc32c }).crc32c;
    if (typeof native !== 'function') return undefined;
    const vectors: Array<[Uint8Array, number]> = [
      [Buffer.from('123456789'), 0xe3069283],
      [Buffer.alloc(32), 0x8a9136aa],
      [Buffer.alloc(32, 0xff), 0x62a8ab43],
      [Buffer.alloc(0), 0],
    ];
    const probe = Buffer.from('123456789abcdefghijklmnopqrstuvwxyz'.repeat(40));
    vectors.push([probe.subarray(7, 1201), crc32cJs(probe, 7, 1201)]); // a view with an offset, as record batches are
    for (const [input, expected] of vectors) if (native(input) >>> 0 !== expected) return undefined;
    return native;
  } catch {
    return undefined; // no binary for this platform (its optional dependency was not installed): fall back
  }
}

const native = loadNativeCrc32c();

/** Which implementation `crc32c` uses: 'native' (@node-rs/crc32), 'wasm' or 'js'. */
export const crc32cImplementation: 'native' | 'wasm' | 'js' = native ? 'native' : wasm ? 'wasm' : 'js';

export function crc32c(data: Uint8Array, start = 0, end = data.length): number {
  if (native) return native(start === 0 && end === data.length ? data : data.subarray(start, end)) >>> 0;
  return crc32cWithoutNative(data, start, end);
}

/** The WebAssembly loop when it loaded, else the JS one (exported for tests and the bench). */
export function crc32cWithoutNative(data: Uint8Array, start = 0, end = data.length): number {
  const length = end - start;
  if (!wasm || length < WASM_MIN_BYTES) return crc32cJs(data, start, end);
  const needed = TABLE_BYTES + length;
  if (wasm.view.length < needed) {
    wasm.memory.grow(Math.ceil((needed - wasm.view.length) / PAGE));
    wasm.view = new Uint8Array(wasm.memory.buffer);
  }
  wasm.view.set(data.subarray(start, end), TABLE_BYTES);
  return wasm.crc(TABLE_BYTES, length, 0) >>> 0;
}

/** The plain JS slicing-by-8 loop (exported for tests and as the fallback). */
export function crc32cJs(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffffffff;
  let i = start;
  const stop8 = end - ((end - start) & 7);
  while (i < stop8) {
    const a = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) ^ crc;
    const b = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
    crc =
      T7[a & 0xff]! ^
      T6[(a >>> 8) & 0xff]! ^
      T5[(a >>> 16) & 0xff]! ^
      T4[a >>> 24]! ^
      T3[b & 0xff]! ^
      T2[(b >>> 8) & 0xff]! ^
      T1[(b >>> 16) & 0xff]! ^
      T0[b >>> 24]!;
    i += 8;
  }
  while (i < end) crc = T0[(crc ^ data[i++]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Knowing when an image file is complete, without waiting for a fixed quiet period:
 * a PNG ends with its `IEND` chunk, a JPEG with the `EOI` marker after its scan.
 * TIFF has no end marker (its directory may come last or first), so TIFF falls back
 * to a stable size. While we are at it we read the dimensions from the header, so a
 * file claiming 100 000 × 100 000 pixels is refused before anyone decodes it.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

/**
 * CRC-32 (zlib's) of PNG chunks: every byte of every frame is checked once, so the native
 * `@node-rs/crc32` (about twice zlib's speed on 8 KiB IDAT chunks) when its binary loads and
 * agrees with zlib, else zlib's own.
 */
export function chooseCrc32(load: (id: string) => unknown = createRequire(import.meta.url)): (data: Uint8Array) => number {
  try {
    const native = (load('@node-rs/crc32') as { crc32?: (data: Uint8Array) => number }).crc32;
    const probe = Buffer.from('IDAT123456789abcdefghijklmnopqrstuvwxyz'.repeat(30));
    const views = [Buffer.from('123456789'), probe, probe.subarray(3, 1001), probe.subarray(7, 7)];
    if (typeof native === 'function' && views.every((v) => native(v) >>> 0 === zlibCrc32(v))) return native;
  } catch {
    // no binary for this platform: zlib's
  }
  return zlibCrc32;
}

const crc32 = chooseCrc32();

export type ImageKind = 'png' | 'jpeg' | 'tiff';

export const CONTENT_TYPES: Record<ImageKind, string> = { png: 'image/png', jpeg: 'image/jpeg', tiff: 'image/tiff' };

/** Reasons a file is rejected; a small fixed set because it is a metric label. */
export type RejectReason = 'empty' | 'truncated' | 'corrupt' | 'not-an-image' | 'too-large' | 'dimensions' | 'symlink' | 'unreadable' | 'bad-sidecar';

export const REJECT_REASONS: readonly RejectReason[] = [
  'empty',
  'truncated',
  'corrupt',
  'not-an-image',
  'too-large',
  'dimensions',
  'symlink',
  'unreadable',
  'bad-sidecar',
];

export type Inspection =
  | { state: 'complete'; kind: ImageKind; width: number; height: number }
  /** Not finished yet: a writer may still be appending. `kind` is known once the magic bytes are there. */
  | { state: 'incomplete'; kind?: ImageKind; detail: string }
  | { state: 'invalid'; reason: RejectReason; detail: string }
  /** TIFF: structurally plausible, complete only once its size is stable. */
  | { state: 'needs-stable-size'; kind: 'tiff'; width?: number; height?: number };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The whole IEND chunk: length 0, type, CRC. Always these 12 bytes. */
export const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** The kind of image the first bytes announce, or undefined (not an image, or too short to tell yet). */
export function sniffKind(head: Buffer): ImageKind | undefined {
  if (head.length >= 8 && head.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (
    head.length >= 4 &&
    ((head[0] === 0x49 && head[1] === 0x49 && head[2] === 0x2a && head[3] === 0x00) ||
      (head[0] === 0x4d && head[1] === 0x4d && head[2] === 0x00 && head[3] === 0x2a))
  )
    return 'tiff';
  return undefined;
}

/** Whether `head` could still become an image as more bytes arrive (a prefix of a magic number). */
function couldBecomeImage(head: Buffer): boolean {
  const prefixes = [PNG_SIGNATURE, Buffer.from([0xff, 0xd8, 0xff]), Buffer.from('II*\0', 'latin1'), Buffer.from('MM\0*', 'latin1')];
  return prefixes.some((p) => head.length < p.length && p.subarray(0, head.length).equals(head));
}

/**
 * Cheap test on the last bytes of a file: could it be complete? Used before reading a
 * whole file on every change event of a slow writer.
 */
export function tailLooksComplete(kind: ImageKind, tail: Buffer): boolean {
  if (kind === 'png') return tail.length >= 12 && tail.subarray(tail.length - 12).equals(PNG_IEND);
  if (kind === 'jpeg') return tail.length >= 2 && tail[tail.length - 2] === 0xff && tail[tail.length - 1] === 0xd9;
  return true;
}

/** Inspects a whole file's bytes. Pure: no I/O. */
export function inspectImage(bytes: Buffer, limits: { maxPixels: number }): Inspection {
  if (bytes.length === 0) return { state: 'incomplete', detail: 'zero bytes so far' };
  const kind = sniffKind(bytes);
  if (!kind) {
    if (couldBecomeImage(bytes)) return { state: 'incomplete', detail: `only ${bytes.length} bytes so far` };
    return { state: 'invalid', reason: 'not-an-image', detail: `starts with bytes ${bytes.subarray(0, 8).toString('hex')}, which is not PNG, JPEG or TIFF` };
  }
  const result = kind === 'png' ? inspectPng(bytes) : kind === 'jpeg' ? inspectJpeg(bytes) : inspectTiff(bytes);
  if (result.state === 'complete' || (result.state === 'needs-stable-size' && result.width !== undefined && result.height !== undefined)) {
    const { width, height } = result as { width: number; height: number };
    const refused = pixelLimit(width, height, limits.maxPixels);
    if (refused) return refused;
  }
  return result;
}

/**
 * `too-large` for more than `maxPixels` (the one limit of the config, `limits.maxPixels`, which
 * classify's decoder applies too), `dimensions` for a zero side; undefined when acceptable.
 */
export function pixelLimit(width: number, height: number, maxPixels: number): Extract<Inspection, { state: 'invalid' }> | undefined {
  if (width < 1 || height < 1)
    return { state: 'invalid', reason: 'dimensions', detail: `header claims ${width}×${height} pixels; an image needs at least 1×1` };
  if (width * height > maxPixels) {
    return {
      state: 'invalid',
      reason: 'too-large',
      detail: `header claims ${width}×${height} = ${width * height} pixels; the limit is ${maxPixels} pixels (limits.maxPixels)`,
    };
  }
  return undefined;
}

/**
 * The dimensions an image's header claims, from its first bytes only (PNG IHDR, JPEG SOF,
 * TIFF first directory): a frame too large to decode is refused before it is read whole,
 * let alone decoded. Undefined when these bytes do not hold the dimensions (yet).
 */
export function headerDimensions(head: Buffer): { kind: ImageKind; width: number; height: number } | undefined {
  const kind = sniffKind(head);
  if (kind === 'png') {
    // signature:8 length:4 "IHDR":4 width:u32be height:u32be
    if (head.length < 24 || head.toString('latin1', 12, 16) !== 'IHDR') return undefined;
    return { kind, width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
  }
  if (kind === 'jpeg') {
    for (let offset = 2; offset + 4 <= head.length;) {
      const marker = head[offset + 1]!;
      if (head[offset] !== 0xff) return undefined;
      if (marker === 0xff) {
        offset += 1;
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        offset += 2;
        continue;
      }
      if (marker === 0xda || marker === 0xd9) return undefined; // scan before any SOF: inspectImage says corrupt
      const length = head.readUInt16BE(offset + 2);
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        if (offset + 9 > head.length) return undefined;
        return { kind, width: head.readUInt16BE(offset + 7), height: head.readUInt16BE(offset + 5) };
      }
      if (length < 2) return undefined;
      offset += 2 + length;
    }
    return undefined;
  }
  if (kind === 'tiff') {
    const tiff = inspectTiff(head);
    return tiff.state === 'needs-stable-size' && tiff.width !== undefined && tiff.height !== undefined
      ? { kind, width: tiff.width, height: tiff.height }
      : undefined;
  }
  return undefined;
}

/*
 * PNG file => signature chunk*
 * chunk    => length:u32be type:4 data:length crc:u32be (CRC over type+data)
 * IHDR (first) => width:u32be height:u32be depth:u8 colour:u8 compression:u8 filter:u8 interlace:u8
 */
function inspectPng(bytes: Buffer): Inspection {
  let offset = 8;
  let width = 0;
  let height = 0;
  let chunks = 0;
  while (true) {
    if (offset + 8 > bytes.length) return { state: 'incomplete', kind: 'png', detail: `chunk header at byte ${offset} not written yet` };
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    if (length > 0x7fffffff || !/^[A-Za-z]{4}$/.test(type)) {
      return { state: 'invalid', reason: 'corrupt', detail: `PNG chunk at byte ${offset} has type ${JSON.stringify(type)} and length ${length}` };
    }
    if (chunks === 0 && (type !== 'IHDR' || length !== 13))
      return { state: 'invalid', reason: 'corrupt', detail: `PNG starts with chunk ${type} of ${length} bytes, expected IHDR of 13` };
    const end = offset + 12 + length;
    if (end > bytes.length) return { state: 'incomplete', kind: 'png', detail: `chunk ${type} needs ${end} bytes, have ${bytes.length}` };
    const stored = bytes.readUInt32BE(offset + 8 + length);
    const computed = crc32(bytes.subarray(offset + 4, offset + 8 + length)) >>> 0;
    if (stored !== computed) {
      return {
        state: 'invalid',
        reason: 'corrupt',
        detail: `PNG chunk ${type} at byte ${offset}: CRC ${stored.toString(16)} but content gives ${computed.toString(16)}`,
      };
    }
    if (type === 'IHDR') {
      width = bytes.readUInt32BE(offset + 8);
      height = bytes.readUInt32BE(offset + 12);
    }
    chunks += 1;
    if (type === 'IEND') return { state: 'complete', kind: 'png', width, height };
    offset = end;
  }
}

/*
 * JPEG => SOI (FFD8) segment* SOS scan-data ... EOI (FFD9)
 * segment => FF marker:u8 length:u16be (length includes itself) payload
 * SOFn (C0–CF except C4, C8, CC) payload => precision:u8 height:u16be width:u16be ...
 * Scan data byte-stuffs FF as FF00, so FFD9 at the end of the file ends the image.
 */
function inspectJpeg(bytes: Buffer): Inspection {
  let offset = 2;
  let width: number | undefined;
  let height: number | undefined;
  while (true) {
    if (offset + 4 > bytes.length) return { state: 'incomplete', kind: 'jpeg', detail: `segment at byte ${offset} not written yet` };
    if (bytes[offset] !== 0xff)
      return { state: 'invalid', reason: 'corrupt', detail: `JPEG: expected a marker (FF) at byte ${offset}, found ${bytes[offset]!.toString(16)}` };
    const marker = bytes[offset + 1]!;
    if (marker === 0xff) {
      offset += 1;
      continue;
    } // fill byte
    if (marker === 0xd9) return { state: 'invalid', reason: 'corrupt', detail: `JPEG: end of image at byte ${offset} before any scan` };
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    } // markers without length
    const length = bytes.readUInt16BE(offset + 2);
    if (length < 2) return { state: 'invalid', reason: 'corrupt', detail: `JPEG: segment FF${marker.toString(16)} at byte ${offset} has length ${length}` };
    if (offset + 2 + length > bytes.length)
      return { state: 'incomplete', kind: 'jpeg', detail: `segment FF${marker.toString(16)} needs ${offset + 2 + length} bytes, have ${bytes.length}` };
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (length < 7) return { state: 'invalid', reason: 'corrupt', detail: `JPEG: frame header at byte ${offset} is ${length} bytes` };
      height = bytes.readUInt16BE(offset + 5);
      width = bytes.readUInt16BE(offset + 7);
    }
    if (marker === 0xda) {
      if (width === undefined || height === undefined)
        return { state: 'invalid', reason: 'corrupt', detail: 'JPEG: scan starts before any frame header (SOF)' };
      const scanStart = offset + 2 + length;
      if (bytes.length >= scanStart + 2 && bytes[bytes.length - 2] === 0xff && bytes[bytes.length - 1] === 0xd9) {
        return { state: 'complete', kind: 'jpeg', width, height };
      }
      return { state: 'incomplete', kind: 'jpeg', detail: 'no end-of-image marker (FFD9) yet' };
    }
    offset += 2 + length;
  }
}

/*
 * TIFF => byte-order:2 ("II" little, "MM" big) 42:u16 first-IFD-offset:u32
 * IFD  => count:u16 entry*count next-IFD:u32; entry => tag:u16 type:u16 count:u32 value:u32
 * Tags 256 ImageWidth and 257 ImageLength hold the dimensions (SHORT or LONG).
 */
function inspectTiff(bytes: Buffer): Inspection {
  if (bytes.length < 8) return { state: 'incomplete', kind: 'tiff', detail: 'header not written yet' };
  const le = bytes[0] === 0x49;
  const u16 = (o: number) => (le ? bytes.readUInt16LE(o) : bytes.readUInt16BE(o));
  const u32 = (o: number) => (le ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o));
  const ifd = u32(4);
  if (ifd < 8) return { state: 'invalid', reason: 'corrupt', detail: `TIFF: first directory offset ${ifd} points into the header` };
  if (ifd + 2 > bytes.length) return { state: 'needs-stable-size', kind: 'tiff' };
  const count = u16(ifd);
  if (ifd + 2 + count * 12 > bytes.length) return { state: 'needs-stable-size', kind: 'tiff' };
  let width: number | undefined;
  let height: number | undefined;
  for (let i = 0; i < count; i += 1) {
    const entry = ifd + 2 + i * 12;
    const tag = u16(entry);
    const type = u16(entry + 2);
    const value = type === 3 ? u16(entry + 8) : u32(entry + 8);
    if (tag === 256) width = value;
    if (tag === 257) height = value;
  }
  return { state: 'needs-stable-size', kind: 'tiff', width, height };
}

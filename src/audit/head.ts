/**
 * audit.head: the last record the writer made durable, `{seq, hash}`, fsynced after each append.
 * Removing records from the end of audit.jsonl leaves a chain that is valid on its own; the head
 * file is what says the file used to go further.
 *
 * Layout: two fixed slots of SLOT_BYTES, each one JSON line padded with spaces:
 *   {"check":"<first 16 hex of sha256(seq:hash)>","hash":"<64 hex>","seq":<n>}
 * Record n goes to slot n % 2, so a crash while one slot is being overwritten leaves the other
 * (one record older) intact; the reader takes the highest seq whose check matches.
 * Readable with `cat`.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { HEX_DIGEST, sha256Hex } from './canonical.js';

const SLOT_BYTES = 160;

export interface Head {
  seq: number;
  hash: string;
}

export type HeadState = { state: 'ok'; head: Head } | { state: 'missing' } | { state: 'damaged'; reason: string };

const check = (seq: number, hash: string) => sha256Hex(`${seq}:${hash}`).slice(0, 16);

function slotBytes(head: Head): Buffer {
  const text = JSON.stringify({ check: check(head.seq, head.hash), hash: head.hash, seq: head.seq });
  return Buffer.from(`${text.padEnd(SLOT_BYTES - 1, ' ')}\n`, 'utf8');
}

function parseSlot(text: string): Head | undefined {
  try {
    const value = JSON.parse(text) as { check?: unknown; hash?: unknown; seq?: unknown };
    if (!Number.isSafeInteger(value.seq) || (value.seq as number) < 0) return undefined;
    if (typeof value.hash !== 'string' || !HEX_DIGEST.test(value.hash)) return undefined;
    if (value.check !== check(value.seq as number, value.hash)) return undefined;
    return { seq: value.seq as number, hash: value.hash };
  } catch {
    return undefined;
  }
}

export async function readHead(path: string): Promise<HeadState> {
  let buffer: Buffer;
  try {
    buffer = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw new Error(`audit head ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check its permissions`);
  }
  const slots = [0, 1].map((i) => parseSlot(buffer.toString('utf8', i * SLOT_BYTES, (i + 1) * SLOT_BYTES))).filter((head): head is Head => head !== undefined);
  if (slots.length === 0) return { state: 'damaged', reason: `neither slot of ${path} holds a valid {seq, hash, check} (${buffer.length} bytes)` };
  return { state: 'ok', head: slots.reduce((a, b) => (b.seq > a.seq ? b : a)) };
}

/** The writer's side: one open handle, one positioned write and one fdatasync per update. */
export class HeadWriter {
  private constructor(private readonly handle: FileHandle) {}

  /** Opens (creating when absent) the head file. A new file starts at `initial`. */
  static async open(path: string, initial: Head): Promise<HeadWriter> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      handle = await open(path, 'w+');
    }
    const writer = new HeadWriter(handle);
    if ((await handle.stat()).size !== 2 * SLOT_BYTES) {
      // New (or not in this layout): both slots hold `initial`.
      await handle.truncate(0);
      await handle.write(Buffer.concat([slotBytes(initial), slotBytes(initial)]), 0, 2 * SLOT_BYTES, 0);
      await handle.sync();
    }
    return writer;
  }

  async write(head: Head, sync = true): Promise<void> {
    await this.handle.write(slotBytes(head), 0, SLOT_BYTES, (head.seq % 2) * SLOT_BYTES);
    if (sync) await this.handle.datasync();
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

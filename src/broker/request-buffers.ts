/**
 * Memory for big requests while they arrive, shared by all connections.
 *
 * Each buffer is at least MAPPING_BYTES. glibc's malloc serves allocations
 * over 32 MiB (the ceiling of its dynamic mmap threshold) with mmap, as other
 * allocators do, so pages are committed only as bytes arrive and go back to
 * the OS when the buffer is freed, whatever else the heap holds. Bytes held
 * as the socket's small chunks would instead pin the malloc heap, and memory a
 * slow or malicious client made the broker hold would never be given back.
 *
 * A fresh mapping costs page faults on every byte written, so a few freed
 * buffers are kept for the next big request, and freed for good once unused
 * for IDLE_MS (`trim`, run by the broker's sweep): an idle broker holds none.
 */
import { MessageChannel } from 'node:worker_threads';

const MiB = 1024 * 1024;
/** The least size of a buffer: over glibc's 32 MiB mmap threshold ceiling. */
export const MAPPING_BYTES = 32 * MiB + 64 * 1024;
/** Freed buffers kept for reuse. */
const POOLED = 4;
/** A pooled buffer unused this long is freed. */
const IDLE_MS = 1000;

export class RequestBuffers {
  private pool: Array<{ buffer: Buffer; since: number }> = [];

  /** A buffer of at least `bytes` (and at least MAPPING_BYTES); throws RangeError when memory cannot be had. */
  take(bytes: number): Buffer {
    if (bytes <= MAPPING_BYTES) {
      const pooled = this.pool.pop();
      if (pooled) return pooled.buffer;
    }
    return Buffer.allocUnsafeSlow(Math.max(bytes, MAPPING_BYTES));
  }

  /** Gives a buffer from `take` back; nothing may reference it afterwards. */
  give(buffer: Buffer, now: number): void {
    if (buffer.length === MAPPING_BYTES && this.pool.length < POOLED) this.pool.push({ buffer, since: now });
    else freeNow(buffer);
  }

  /** Frees pooled buffers unused for IDLE_MS (all of them with `now` = Infinity). */
  trim(now: number): void {
    const keep: Array<{ buffer: Buffer; since: number }> = [];
    for (const entry of this.pool) {
      if (now - entry.since >= IDLE_MS) freeNow(entry.buffer);
      else keep.push(entry);
    }
    this.pool = keep;
  }

  /** Buffers held for reuse (for tests and the sweep). */
  get pooled(): number {
    return this.pool.length;
  }
}

/**
 * Frees a buffer's memory now rather than at a garbage collection that may
 * not come for minutes on an idle broker: transferring its ArrayBuffer into a
 * message that is never delivered detaches it, and closing the channel drops
 * the message and the memory with it. Only for buffers nothing else references.
 */
export function freeNow(buffer: Buffer): void {
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(null, [buffer.buffer as ArrayBuffer]);
  } finally {
    port1.close();
    port2.close();
  }
}

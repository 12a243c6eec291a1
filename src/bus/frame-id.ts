/**
 * The frame id of DESIGN.md: `<camera>-<capture time, ISO 8601 without - : .>-<first 16 hex of
 * the content's SHA-256>`. Stable across restarts: the same file always gets the same id, so a
 * re-sent frame de-duplicates downstream. Pure (the digest too, wherever it is computed).
 */
import { createHash, webcrypto } from 'node:crypto';

/** Hex SHA-256 of a frame's bytes (the `sha256` of the ledger and the id's last part). */
export const frameDigest = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/**
 * The same digest computed on libuv's thread pool (WebCrypto jobs run there), so the ~0.7 ms
 * per MB of hashing does not hold the event loop that reads, checks and sends every frame.
 */
export async function frameDigestOffThread(bytes: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

/** `capturedAt` is an ISO 8601 string (as `Date.toISOString()` writes it); `sha256` the hex digest. */
export function frameIdFor(camera: string, capturedAt: string, sha256: string): string {
  return `${camera}-${capturedAt.replace(/[-:.]/g, '')}-${sha256.slice(0, 16)}`;
}

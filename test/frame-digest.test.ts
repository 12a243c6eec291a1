/**
 * The frame digest computed off the event loop (src/bus/frame-id.ts) is the SHA-256 the frame id
 * and the ledger always used: same hex for known vectors, frame-sized buffers and views.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { frameDigest, frameDigestOffThread, frameIdFor } from '../src/bus/frame-id.js';

describe('frameDigestOffThread', () => {
  it('gives the SHA-256 of known vectors', async () => {
    expect(await frameDigestOffThread(Buffer.alloc(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(await frameDigestOffThread(Buffer.from('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('agrees with frameDigest on frame-sized buffers and on views with an offset, so frame ids do not change', async () => {
    const big = Buffer.allocUnsafe(1_200_000);
    for (let i = 0; i < big.length; i += 1) big[i] = (i * 2654435761) >>> 24;
    for (const view of [big, big.subarray(1), big.subarray(4096, 70_001), Buffer.from('cam-1')]) {
      const expected = createHash('sha256').update(view).digest('hex');
      expect(await frameDigestOffThread(view)).toBe(expected);
      expect(frameDigest(view)).toBe(expected);
    }
    const id = frameIdFor('cam-1', '2026-11-22T10:00:00.000Z', await frameDigestOffThread(big));
    expect(id).toBe(`cam-1-20261122T100000000Z-${frameDigest(big).slice(0, 16)}`);
  });
});

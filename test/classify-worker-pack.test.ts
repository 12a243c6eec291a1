/**
 * What the classify worker's share of a batch travels in: one ArrayBuffer holding just the items'
 * bytes, never the (large) buffers they are views of.
 */
import { describe, expect, it } from 'vitest';
import { packBytes, unpackBytes } from '../src/classify/worker-client.js';

describe('packBytes / unpackBytes', () => {
  it('packs views into a large buffer as their bytes alone, at their offsets, and gives them back', () => {
    // As Kafka hands them over: record values are views into one fetch response.
    const response = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < response.length; i += 4093) response[i] = i % 251;
    const items = [response.subarray(10, 5_010), response.subarray(2_000_000, 2_000_000), response.subarray(4_000_000, 4_100_123)];
    const packed = packBytes(items);
    expect(packed.data.byteLength).toBe(5_000 + 0 + 100_123);
    expect(packed.offsets).toEqual([0, 5_000, 5_000, 105_123]);
    const back = unpackBytes(packed);
    expect(back.map((b) => b.length)).toEqual([5_000, 0, 100_123]);
    back.forEach((b, i) => expect(b.equals(items[i]!)).toBe(true));
    // Views of the packed buffer, not copies.
    expect(back.every((b) => b.buffer === packed.data)).toBe(true);
  });

  it('packs nothing into an empty buffer', () => {
    const packed = packBytes([]);
    expect(packed.data.byteLength).toBe(0);
    expect(unpackBytes(packed)).toEqual([]);
  });
});

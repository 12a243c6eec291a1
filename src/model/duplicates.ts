/**
 * Leakage guard. The real OpenCrystalData PG class holds pixel-identical rotated and flipped
 * copies of the same crop; a random split then puts one crystal in both train and test and the
 * test score measures memory, not skill. We find such groups and keep each on one side.
 *
 * - Exact copies: a hash of the full-resolution pixels that is the same for all 8 rotations and
 *   flips of an image (the smallest of the 8 orientations' hashes).
 * - Near copies (re-encoded, slightly cropped or rescaled): a perceptual hash, the signs of the
 *   8×8 lowest DCT frequencies of a 32×32 thumbnail against their median, compared with every
 *   rotation/flip of the other image (a flip negates odd frequencies, a transpose swaps u and v,
 *   so all 8 variants come from one DCT). Hamming distance ≤ `nearBits` joins two images.
 */

/** Dihedral transforms as (transpose, flipX, flipY). */
const DIHEDRAL: ReadonlyArray<readonly [boolean, boolean, boolean]> = [
  [false, false, false],
  [false, true, false],
  [false, false, true],
  [false, true, true],
  [true, false, false],
  [true, true, false],
  [true, false, true],
  [true, true, true],
];

/** 64-bit hash (two 32-bit lanes) of RGB pixels read in one orientation. */
function orientedHash(rgb: Uint8Array, width: number, height: number, t: readonly [boolean, boolean, boolean]): string {
  const [transpose, flipX, flipY] = t;
  const outW = transpose ? height : width;
  const outH = transpose ? width : height;
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ (outW * 131 + outH);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      let sx = transpose ? y : x;
      let sy = transpose ? x : y;
      if (flipX) sx = width - 1 - sx;
      if (flipY) sy = height - 1 - sy;
      const i = (sy * width + sx) * 3;
      const v = rgb[i]! | (rgb[i + 1]! << 8) | (rgb[i + 2]! << 16);
      h1 = Math.imul(h1 ^ v, 0x01000193);
      h2 = Math.imul(h2 ^ v, 0x5bd1e995) ^ (h2 >>> 13);
    }
  }
  return `${(h1 >>> 0).toString(16).padStart(8, '0')}${(h2 >>> 0).toString(16).padStart(8, '0')}:${outW}x${outH}`;
}

/** Same value for an image and any of its 90° rotations and flips. */
export function dihedralExactHash(rgb: Uint8Array, width: number, height: number): string {
  let best = '';
  for (const t of DIHEDRAL) {
    const h = orientedHash(rgb, width, height, t);
    if (best === '' || h < best) best = h;
  }
  return best;
}

const DCT_N = 32;
const DCT_K = 8;
const COS: Float64Array = (() => {
  const c = new Float64Array(DCT_K * DCT_N);
  for (let u = 0; u < DCT_K; u++) for (let x = 0; x < DCT_N; x++) c[u * DCT_N + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * DCT_N));
  return c;
})();

/** Perceptual hashes (8 orientations, each two uint32) of a square grey image, side a multiple of 32. */
export function dihedralPerceptualHashes(pixels: Uint8Array, side: number): Uint32Array {
  if (side % DCT_N !== 0) throw new Error(`perceptual hash: image side must be a multiple of ${DCT_N}, got ${side}`);
  const f = side / DCT_N;
  const thumb = new Float64Array(DCT_N * DCT_N);
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) thumb[Math.floor(y / f) * DCT_N + Math.floor(x / f)]! += pixels[y * side + x]!;
  // Separable DCT-II, only the 8×8 lowest frequencies. coef[v][u]: v vertical, u horizontal.
  const rows = new Float64Array(DCT_N * DCT_K);
  for (let y = 0; y < DCT_N; y++)
    for (let u = 0; u < DCT_K; u++) {
      let s = 0;
      for (let x = 0; x < DCT_N; x++) s += thumb[y * DCT_N + x]! * COS[u * DCT_N + x]!;
      rows[y * DCT_K + u] = s;
    }
  const coef = new Float64Array(DCT_K * DCT_K);
  for (let v = 0; v < DCT_K; v++)
    for (let u = 0; u < DCT_K; u++) {
      let s = 0;
      for (let y = 0; y < DCT_N; y++) s += rows[y * DCT_K + u]! * COS[v * DCT_N + y]!;
      coef[v * DCT_K + u] = s;
    }
  const out = new Uint32Array(DIHEDRAL.length * 2);
  const variant = new Float64Array(DCT_K * DCT_K);
  DIHEDRAL.forEach(([transpose, flipX, flipY], k) => {
    for (let v = 0; v < DCT_K; v++)
      for (let u = 0; u < DCT_K; u++) {
        // Output (v,u) reads source (u,v) when transposed; a flip along an axis negates the odd
        // frequencies along that axis (of the source).
        const sv = transpose ? u : v;
        const su = transpose ? v : u;
        let c = coef[sv * DCT_K + su]!;
        if (flipX && su % 2 === 1) c = -c;
        if (flipY && sv % 2 === 1) c = -c;
        variant[v * DCT_K + u] = c;
      }
    const ac = Array.from(variant)
      .slice(1)
      .sort((a, b) => a - b);
    const median = (ac[31]! + ac[32]!) / 2;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 64; i++) {
      if (variant[i]! > median) {
        if (i < 32) lo |= 1 << i;
        else hi |= 1 << (i - 32);
      }
    }
    out[k * 2] = lo >>> 0;
    out[k * 2 + 1] = hi >>> 0;
  });
  return out;
}

function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Smallest Hamming distance between a's identity hash and any orientation of b. */
export function perceptualDistance(a: Uint32Array, b: Uint32Array): number {
  let best = 64;
  for (let k = 0; k < 8; k++) {
    const d = popcount32(a[0]! ^ b[k * 2]!) + popcount32(a[1]! ^ b[k * 2 + 1]!);
    if (d < best) best = d;
  }
  return best;
}

class UnionFind {
  private readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = Int32Array.from({ length: n }, (_, i) => i);
  }
  find(i: number): number {
    while (this.parent[i] !== i) {
      this.parent[i] = this.parent[this.parent[i]!]!;
      i = this.parent[i]!;
    }
    return i;
  }
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
    return true;
  }
}

export interface DuplicateItem {
  exactHash: string;
  perceptual: Uint32Array;
  /** Only items of the same class are compared for near copies. */
  label: number;
}

export interface DuplicateGroups {
  /** Group id per item (the smallest member index). */
  groupOf: Int32Array;
  /** Groups with more than one member. */
  groups: number;
  /** Items that are in such a group. */
  itemsInGroups: number;
  /** Pairs joined as exact (rotation/flip-invariant) copies. */
  exactLinks: number;
  /** Further pairs joined as near copies. */
  nearLinks: number;
}

/** Group items that are exact or near copies of each other (near: perceptual distance ≤ nearBits). */
export function findDuplicateGroups(items: readonly DuplicateItem[], nearBits = 4): DuplicateGroups {
  const uf = new UnionFind(items.length);
  let exactLinks = 0;
  let nearLinks = 0;
  const firstWithHash = new Map<string, number>();
  items.forEach((item, i) => {
    const first = firstWithHash.get(item.exactHash);
    if (first === undefined) firstWithHash.set(item.exactHash, i);
    else if (uf.union(first, i)) exactLinks++;
  });
  if (nearBits >= 0) {
    for (let i = 0; i < items.length; i++) {
      const a = items[i]!;
      for (let j = i + 1; j < items.length; j++) {
        const b = items[j]!;
        if (a.label !== b.label) continue;
        if (perceptualDistance(a.perceptual, b.perceptual) <= nearBits && uf.union(i, j)) nearLinks++;
      }
    }
  }
  const groupOf = new Int32Array(items.length);
  const sizes = new Map<number, number>();
  for (let i = 0; i < items.length; i++) {
    groupOf[i] = uf.find(i);
    sizes.set(groupOf[i]!, (sizes.get(groupOf[i]!) ?? 0) + 1);
  }
  let groups = 0;
  let itemsInGroups = 0;
  for (const size of sizes.values())
    if (size > 1) {
      groups++;
      itemsInGroups += size;
    }
  return { groupOf, groups, itemsInGroups, exactLinks, nearLinks };
}

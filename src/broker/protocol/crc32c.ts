/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka
 * record batch v2. Slicing-by-8: eight table lookups per 8 input bytes, which
 * keeps a 500 KiB batch well under a millisecond in plain JS.
 */
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
    const previous = TABLES[t - 1];
    for (let n = 0; n < 256; n++) table[n] = (previous[n] >>> 8) ^ base[previous[n] & 0xff];
    TABLES.push(table);
  }
})();

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES;

export function crc32c(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffffffff;
  let i = start;
  const stop8 = end - ((end - start) & 7);
  while (i < stop8) {
    const a = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) ^ crc;
    const b = data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
    crc =
      T7[a & 0xff] ^ T6[(a >>> 8) & 0xff] ^ T5[(a >>> 16) & 0xff] ^ T4[a >>> 24] ^
      T3[b & 0xff] ^ T2[(b >>> 8) & 0xff] ^ T1[(b >>> 16) & 0xff] ^ T0[b >>> 24];
    i += 8;
  }
  while (i < end) crc = T0[(crc ^ data[i++]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Non-cryptographic hashing of strings and byte ranges (prediction cache buckets, the selection
 * layer's feedback memo). A leaf: pure functions, no imports.
 */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * Murmur-style mixing over little-endian 32-bit words, FNV over the tail bytes. The value does
 * not depend on where the bytes sit in memory (aligned views take a fast path).
 */
export function hashBytes(b: Uint8Array, seed: number): number {
  let h = seed ^ b.byteLength;
  const words = b.byteLength >>> 2;
  const aligned = (b.byteOffset & 3) === 0;
  const w = aligned && words > 0 ? new Int32Array(b.buffer, b.byteOffset, words) : null;
  let i = 0;
  for (; i < words; i++) {
    const j = i << 2;
    let k = w ? w[i]! : b[j]! | (b[j + 1]! << 8) | (b[j + 2]! << 16) | (b[j + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  i = words * 4;
  for (; i < b.byteLength; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h;
}

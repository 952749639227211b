/**
 * Bump allocation of tensor bytes from shared slabs. Decoding a frame of many small tensors
 * with one ArrayBuffer each costs an allocation, a zero-fill and external-memory bookkeeping per
 * tensor (measured ~7 µs for 3 KB, most of a query's decode cost); a copy into a slab is a
 * memcpy and a view. Views start 8-byte aligned, so any element type can view them in place.
 *
 * A slab is freed by the garbage collector once no view into it is alive, so a view that is
 * kept long (a prediction cache entry) must be copied out with `own()` first, or it would keep
 * the whole slab alive.
 */
const SLAB_BYTES = 1 << 20;
/** Larger tensors get their own buffer: they would waste most of a slab's tail. */
const MAX_SLAB_ALLOC = SLAB_BYTES >> 3;

export class SlabAllocator {
  private slab = new Uint8Array(SLAB_BYTES);
  private offset = 0;

  /** A copy of `src` in slab memory (or in its own buffer when large). */
  copy(src: Uint8Array): Uint8Array {
    const n = src.byteLength;
    if (n > MAX_SLAB_ALLOC) return src.slice();
    if (this.offset + n > SLAB_BYTES) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.offset = 0;
    }
    const view = this.slab.subarray(this.offset, this.offset + n);
    view.set(src);
    this.offset = (this.offset + n + 7) & ~7;
    return view;
  }
}

/** Bytes that own their buffer: `v` itself when it spans its whole buffer, else a copy. */
export function own(v: Uint8Array): Uint8Array {
  return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v : v.slice();
}

/** The process-wide allocator for tensors decoded on the main thread. */
export const tensorSlab = new SlabAllocator();

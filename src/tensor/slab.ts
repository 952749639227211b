/**
 * Bump allocation of tensor bytes from shared slabs. Decoding a frame of many small tensors
 * with one ArrayBuffer each costs an allocation, a zero-fill and external-memory bookkeeping per
 * tensor (measured ~4-7 µs for 3 KB on this VM, where touching fresh pages is slow: most of a
 * query's decode cost); a copy into a slab is a memcpy and a view. Views start 8-byte aligned,
 * so any element type can view them in place.
 *
 * Recycling: each view counts as one reference on its slab. A holder that knows the bytes are
 * no longer read by anyone may `release()` the view; a slab that is full and has no references
 * left goes back to a small free list and is reused, so steady traffic stops allocating (and
 * stops feeding V8's external-memory pressure, which forces full GCs). Views that are never
 * released are simply garbage-collected with their slab, as with plain buffers. Releasing a view
 * that is still read elsewhere would corrupt it, so only the one owner that knows releases
 * (the WebSocket frontend, when the executor reports it is done with a query's inputs); a
 * release count that goes negative marks the slab as never to be reused.
 *
 * A view that is kept long (a prediction cache entry) must be copied out with `own()`, or it
 * would keep the whole slab alive.
 */
const SLAB_BYTES = 1 << 20;
/** Browsers without cross-origin isolation have no SharedArrayBuffer (this module is in the browser client too). */
const HAS_SHARED_MEMORY = typeof SharedArrayBuffer === 'function';
/** Larger tensors get their own buffer: they would waste most of a slab's tail. */
const MAX_SLAB_ALLOC = SLAB_BYTES >> 3;

interface Slab {
  bytes: Uint8Array;
  /** Views handed out and not yet released. */
  refs: number;
  /** Full: no more views will be cut from it. */
  sealed: boolean;
  /** A release without a matching view was seen: never reuse this slab. */
  poisoned: boolean;
}

export class SlabAllocator {
  private cur: Slab;
  private offset = 0;
  private readonly free: Slab[] = [];
  private readonly slabs = new WeakMap<ArrayBufferLike, Slab>();
  /** Slabs reused from the free list, and allocated new (for tests and metrics). */
  readonly stats = { reused: 0, allocated: 0 };

  /**
   * `shared`: slabs are SharedArrayBuffers, so a model worker can read tensors in place (the
   * worker runner then passes references to them instead of copying their bytes).
   */
  constructor(
    private readonly maxFree = 16,
    private readonly shared = false,
  ) {
    this.cur = this.newSlab();
  }

  /**
   * Make the next `bytes` of copies (8-byte aligned) land in one slab, one after the other: a
   * frame's tensors then sit back to back and can be stacked without a copy. A reservation
   * larger than a slab gets a slab of its own size (not recycled).
   */
  reserve(bytes: number): void {
    if (this.offset + bytes <= this.cur.bytes.byteLength) return;
    if (bytes <= SLAB_BYTES) this.rotate();
    else this.rotate(bytes);
  }

  /** A copy of `src` in slab memory (or in its own buffer when large). One reference. */
  copy(src: Uint8Array): Uint8Array {
    const n = src.byteLength;
    if (n > MAX_SLAB_ALLOC && this.offset + n > this.cur.bytes.byteLength) return src.slice();
    if (this.offset + n > this.cur.bytes.byteLength) this.rotate();
    const view = this.cur.bytes.subarray(this.offset, this.offset + n);
    view.set(src);
    this.cur.refs++;
    this.offset = (this.offset + n + 7) & ~7;
    return view;
  }

  /**
   * `n` bytes of slab memory (8-byte aligned, contents unspecified) for the caller to fill: one
   * reference, as from copy(). Up to a slab's size it comes from a slab (a fresh or recycled one
   * when the current one lacks the room); larger, from a slab of its own size (not recycled).
   */
  alloc(n: number): Uint8Array {
    if (this.offset + n > this.cur.bytes.byteLength) {
      if (n <= SLAB_BYTES) this.rotate();
      else this.rotate(n);
    }
    const view = this.cur.bytes.subarray(this.offset, this.offset + n);
    this.cur.refs++;
    this.offset = (this.offset + n + 7) & ~7;
    return view;
  }

  /** Drop the reference of a view from copy(): its bytes may be overwritten from now on. */
  release(view: Uint8Array): void {
    const slab = this.slabs.get(view.buffer);
    if (!slab) return;
    if (--slab.refs < 0) slab.poisoned = true;
    if (slab.refs === 0 && slab.sealed) this.recycle(slab);
  }

  private rotate(size = SLAB_BYTES): void {
    const full = this.cur;
    full.sealed = true;
    if (full.refs === 0) this.recycle(full);
    const reuse = size === SLAB_BYTES ? this.free.pop() : undefined;
    if (size !== SLAB_BYTES) this.cur = this.newSlab(size);
    else if (reuse) {
      reuse.sealed = false;
      this.stats.reused++;
      this.cur = reuse;
    } else this.cur = this.newSlab();
    this.offset = 0;
  }

  private recycle(slab: Slab): void {
    if (slab.poisoned || slab.bytes.byteLength !== SLAB_BYTES || this.free.length >= this.maxFree || this.free.includes(slab)) return;
    this.free.push(slab);
  }

  private newSlab(size = SLAB_BYTES): Slab {
    const slab: Slab = { bytes: new Uint8Array(this.shared && HAS_SHARED_MEMORY ? new SharedArrayBuffer(size) : new ArrayBuffer(size)), refs: 0, sealed: false, poisoned: false };
    this.slabs.set(slab.bytes.buffer, slab);
    this.stats.allocated++;
    return slab;
  }
}

/** Bytes that own their buffer: `v` itself when it spans its whole buffer, else a copy. */
export function own(v: Uint8Array): Uint8Array {
  return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v : v.slice();
}

/**
 * The allocator for tensors decoded from frames on the main thread (released by their owner).
 * Shared memory: model workers read a batch's rows straight from these slabs.
 */
export const tensorSlab = new SlabAllocator(64, true);

/** The allocator for per-query output tensors (never released: collected with their slab). */
export const outputSlab = new SlabAllocator(0);

import { Buffer } from 'node:buffer';
import { own } from '../tensor/slab.js';
import { hashBytes, hashString } from '../hash.js';

/**
 * The prediction cache: exact-match on (model, version, input shapes, full input bytes), CLOCK
 * (second-chance) eviction under a byte budget, and coalescing of identical queries in flight.
 *
 * Collision safety: the 32-bit hash only picks a bucket; a hit requires the prefix string and
 * every input byte to be equal. Keys keep references to the query's own input buffers (the
 * engine never writes them after a query is accepted), so building a key copies nothing.
 *
 * Main thread only. Not a policy decision: a pure data structure with no time or I/O.
 */
export interface CacheKey {
  /** Model id, version and the input shapes/datatypes, e.g. "mnist:1|FP32[1,784]". */
  readonly prefix: string;
  readonly parts: readonly Uint8Array[];
  readonly hash: number;
  readonly bytes: number;
}

export function makeCacheKey(prefix: string, parts: readonly Uint8Array[]): CacheKey {
  let h = hashString(prefix);
  let bytes = prefix.length * 2;
  for (const p of parts) {
    h = hashBytes(p, h);
    bytes += p.byteLength;
  }
  return { prefix, parts, hash: h >>> 0, bytes };
}

export function keysEqual(a: CacheKey, b: CacheKey): boolean {
  if (a === b) return true;
  if (a.hash !== b.hash || a.bytes !== b.bytes || a.prefix !== b.prefix || a.parts.length !== b.parts.length) return false;
  for (let i = 0; i < a.parts.length; i++) {
    const x = a.parts[i]!;
    const y = b.parts[i]!;
    if (x.byteLength !== y.byteLength || Buffer.compare(x, y) !== 0) return false;
  }
  return true;
}

export type Waiter<V> = (err: unknown, value?: V) => void;

interface Entry<V> {
  key: CacheKey;
  value: V;
  size: number;
  ref: boolean;
  slot: number;
}

interface InFlight<V> {
  key: CacheKey;
  waiters: Waiter<V>[];
}

/** Fixed bookkeeping cost charged per entry on top of key and value bytes. */
const ENTRY_OVERHEAD = 160;

export interface CacheStats {
  hits: number;
  misses: number;
  coalesced: number;
  evictions: number;
  entries: number;
  bytes: number;
}

export class PredictionCache<V> {
  private readonly buckets = new Map<number, Entry<V>[]>();
  private readonly inflight = new Map<number, InFlight<V>[]>();
  private readonly clock: (Entry<V> | null)[] = [];
  private readonly freeSlots: number[] = [];
  private hand = 0;
  private used = 0;
  readonly stats: CacheStats = { hits: 0, misses: 0, coalesced: 0, evictions: 0, entries: 0, bytes: 0 };

  /**
   * `ownValue` makes a value safe to keep (e.g. copies bytes that are views into shared slab
   * memory, which would otherwise stay alive as long as the entry); key parts are made to own
   * their buffers the same way.
   */
  constructor(
    readonly budgetBytes: number,
    private readonly sizeOf: (v: V) => number,
    private readonly ownValue: (v: V) => V = (v) => v,
  ) {}

  /** A cached value (and mark it recently used), or undefined. */
  get(key: CacheKey): V | undefined {
    const bucket = this.buckets.get(key.hash);
    if (bucket) {
      for (const e of bucket) {
        if (keysEqual(e.key, key)) {
          e.ref = true;
          this.stats.hits++;
          return e.value;
        }
      }
    }
    return undefined;
  }

  /**
   * Coalescing: when an identical query is already running, add `waiter` to it and return
   * true. Otherwise register `key` as in flight (the caller runs it and must later call
   * complete() or fail()) and return false.
   */
  joinOrLead(key: CacheKey, waiter: Waiter<V>): boolean {
    let list = this.inflight.get(key.hash);
    if (list) {
      for (const f of list) {
        if (keysEqual(f.key, key)) {
          f.waiters.push(waiter);
          this.stats.coalesced++;
          return true;
        }
      }
    } else {
      list = [];
      this.inflight.set(key.hash, list);
    }
    list.push({ key, waiters: [waiter] });
    this.stats.misses++;
    return false;
  }

  /** The leader's query succeeded: cache the value and answer every waiter (leader first). */
  complete(key: CacheKey, value: V): void {
    const waiters = this.takeInflight(key);
    this.put(key, value);
    for (const w of waiters) w(null, value);
  }

  /** The leader's query failed: answer every waiter with the error; nothing is cached. */
  fail(key: CacheKey, err: unknown): void {
    for (const w of this.takeInflight(key)) w(err);
  }

  /**
   * Detach one waiter (e.g. its client went away). Returns how many waiters remain; when 0 the
   * in-flight record is dropped too and the caller may cancel the underlying query.
   */
  leave(key: CacheKey, waiter: Waiter<V>): number {
    const list = this.inflight.get(key.hash);
    if (!list) return 0;
    const i = list.findIndex((f) => keysEqual(f.key, key));
    if (i < 0) return 0;
    const f = list[i]!;
    const j = f.waiters.indexOf(waiter);
    if (j >= 0) f.waiters.splice(j, 1);
    if (f.waiters.length === 0) {
      list.splice(i, 1);
      if (list.length === 0) this.inflight.delete(key.hash);
    }
    return f.waiters.length;
  }

  inflightCount(): number {
    let n = 0;
    for (const l of this.inflight.values()) n += l.length;
    return n;
  }

  private takeInflight(key: CacheKey): Waiter<V>[] {
    const list = this.inflight.get(key.hash);
    if (!list) return [];
    const i = list.findIndex((f) => keysEqual(f.key, key));
    if (i < 0) return [];
    const [f] = list.splice(i, 1);
    if (list.length === 0) this.inflight.delete(key.hash);
    return f!.waiters;
  }

  /** Insert (or replace) a value, evicting with CLOCK until it fits. Values over budget are not kept. */
  put(key: CacheKey, value: V): void {
    const size = key.bytes + this.sizeOf(value) + ENTRY_OVERHEAD;
    if (size <= this.budgetBytes) {
      key = { ...key, parts: key.parts.map(own) };
      value = this.ownValue(value);
    }
    let bucket = this.buckets.get(key.hash);
    if (size > this.budgetBytes) {
      // Too big to keep: also drop an older value for the same key, so it is not served stale.
      const old = bucket?.find((e) => keysEqual(e.key, key));
      if (old) this.evict(old);
      return;
    }
    if (bucket) {
      for (const e of bucket) {
        if (keysEqual(e.key, key)) {
          this.used += size - e.size;
          e.value = value;
          e.size = size;
          e.ref = true;
          this.evictUntilFits(0, e);
          this.syncStats();
          return;
        }
      }
    }
    this.evictUntilFits(size);
    bucket = this.buckets.get(key.hash);
    if (!bucket) {
      bucket = [];
      this.buckets.set(key.hash, bucket);
    }
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.clock.length;
    // New entries start unreferenced: one lookup is needed to earn a second chance.
    const entry: Entry<V> = { key, value, size, ref: false, slot };
    this.clock[slot] = entry;
    bucket.push(entry);
    this.used += size;
    this.stats.entries++;
    this.syncStats();
  }

  /** Run the CLOCK hand until `incoming` more bytes fit (never evicting `keep`). */
  private evictUntilFits(incoming: number, keep?: Entry<V>): void {
    const n = this.clock.length;
    let steps = 0;
    while (this.used + incoming > this.budgetBytes && steps < 2 * n + 1) {
      if (this.hand >= n) this.hand = 0;
      const e = this.clock[this.hand];
      steps++;
      if (e && e !== keep) {
        if (e.ref) e.ref = false;
        else this.evict(e);
      }
      this.hand++;
    }
  }

  private evict(e: Entry<V>): void {
    const bucket = this.buckets.get(e.key.hash)!;
    bucket.splice(bucket.indexOf(e), 1);
    if (bucket.length === 0) this.buckets.delete(e.key.hash);
    this.clock[e.slot] = null;
    this.freeSlots.push(e.slot);
    this.used -= e.size;
    this.stats.evictions++;
    this.stats.entries--;
  }

  /** Drop every entry (e.g. when a version is replaced). In-flight queries are untouched. */
  clear(): void {
    this.buckets.clear();
    this.clock.length = 0;
    this.freeSlots.length = 0;
    this.hand = 0;
    this.used = 0;
    this.stats.entries = 0;
    this.syncStats();
  }

  has(key: CacheKey): boolean {
    const bucket = this.buckets.get(key.hash);
    return !!bucket && bucket.some((e) => keysEqual(e.key, key));
  }

  private syncStats(): void {
    this.stats.bytes = this.used;
  }
}

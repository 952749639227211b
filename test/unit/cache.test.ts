import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keysEqual, makeCacheKey, PredictionCache, type CacheKey, type Waiter } from '../../src/engine/cache.js';
import { Prng } from '../../src/modelgen/prng.js';

/** Per-entry bookkeeping charge documented in cache.ts (ENTRY_OVERHEAD). */
const OVERHEAD = 160;
const u8 = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
const sizeOfBytes = (v: Uint8Array): number => v.byteLength;

/** A key built by hand with a chosen hash, to force collisions. */
function forged(prefix: string, parts: Uint8Array[], hash: number): CacheKey {
  return { prefix, parts, hash, bytes: prefix.length * 2 + parts.reduce((n, p) => n + p.byteLength, 0) };
}

describe('cache keys', () => {
  it('equal content in different buffers gives equal keys', () => {
    const a = makeCacheKey('m:1|FP32[1,4]', [new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer)]);
    const b = makeCacheKey('m:1|FP32[1,4]', [new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer)]);
    assert.equal(a.hash, b.hash);
    assert.equal(a.bytes, b.bytes);
    assert.ok(keysEqual(a, b));
  });

  it('one different byte, a different prefix or a different split gives unequal keys', () => {
    const base = makeCacheKey('m:1', [u8(1, 2, 3), u8(4, 5)]);
    assert.ok(!keysEqual(base, makeCacheKey('m:1', [u8(1, 2, 3), u8(4, 6)])));
    assert.ok(!keysEqual(base, makeCacheKey('m:2', [u8(1, 2, 3), u8(4, 5)])));
    assert.ok(!keysEqual(base, makeCacheKey('m:1', [u8(1, 2), u8(3, 4, 5)])));
    assert.ok(!keysEqual(base, makeCacheKey('m:1', [u8(1, 2, 3, 4, 5)])));
  });

  it('with a forged equal hash, keys still differ on bytes, prefix and part boundaries', () => {
    const h = 0x1234abcd;
    const k = forged('m:1|FP32[1,2]', [u8(1, 2, 3, 4, 5, 6, 7, 8)], h);
    assert.ok(keysEqual(k, forged('m:1|FP32[1,2]', [u8(1, 2, 3, 4, 5, 6, 7, 8)], h)), 'sanity: same bytes are equal');
    assert.ok(!keysEqual(k, forged('m:1|FP32[1,2]', [u8(1, 2, 3, 4, 5, 6, 7, 9)], h)));
    assert.ok(!keysEqual(k, forged('m:2|FP32[1,2]', [u8(1, 2, 3, 4, 5, 6, 7, 8)], h)), 'model/version in the prefix');
    assert.ok(!keysEqual(k, forged('m:1|FP32[2,1]', [u8(1, 2, 3, 4, 5, 6, 7, 8)], h)), 'shape in the prefix');
    assert.ok(!keysEqual(k, forged('m:1|FP32[1,2]', [u8(1, 2, 3, 4), u8(5, 6, 7, 8)], h)), 'part boundaries');
  });

  it('the hash does not depend on where the bytes sit in memory', () => {
    const backing = new Uint8Array(41);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 37 + 11) & 0xff;
    const unaligned = backing.subarray(1, 41);
    const aligned = unaligned.slice();
    const a = makeCacheKey('m:1|FP32[1,10]', [aligned]);
    const b = makeCacheKey('m:1|FP32[1,10]', [unaligned]);
    assert.ok(keysEqual(a, b));
  });
});

describe('prediction cache: lookups', () => {
  it('hits only on an exact match, even among colliding hashes', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const h = 77;
    const k1 = forged('m:1|UINT8[1,4]', [u8(1, 2, 3, 4)], h);
    const k2 = forged('m:1|UINT8[1,4]', [u8(1, 2, 3, 5)], h);
    const k3 = forged('m:2|UINT8[1,4]', [u8(1, 2, 3, 4)], h);
    cache.put(k1, 'one');
    assert.equal(cache.get(k2), undefined);
    assert.equal(cache.get(k3), undefined);
    cache.put(k2, 'two');
    cache.put(k3, 'three');
    assert.equal(cache.get(forged('m:1|UINT8[1,4]', [u8(1, 2, 3, 4)], h)), 'one');
    assert.equal(cache.get(k2), 'two');
    assert.equal(cache.get(k3), 'three');
    assert.equal(cache.stats.entries, 3);
    assert.equal(cache.stats.hits, 3);
  });

  it('replacing a value keeps one entry and updates the byte count', () => {
    const cache = new PredictionCache<Uint8Array>(1 << 20, sizeOfBytes);
    const k = makeCacheKey('p', [u8(1)]);
    cache.put(k, new Uint8Array(10));
    const before = cache.stats.bytes;
    const v2 = new Uint8Array(30);
    cache.put(k, v2);
    assert.equal(cache.stats.entries, 1);
    assert.equal(cache.stats.bytes, before + 20);
    assert.equal(cache.get(k), v2);
  });

  it('charges key bytes, value bytes and the per-entry overhead', () => {
    const cache = new PredictionCache<Uint8Array>(1 << 20, sizeOfBytes);
    const k = makeCacheKey('abc', [new Uint8Array(16)]);
    assert.equal(k.bytes, 6 + 16);
    cache.put(k, new Uint8Array(100));
    assert.equal(cache.stats.bytes, 22 + 100 + OVERHEAD);
  });

  it('does not cache a value larger than the whole budget, and evicts nothing for it', () => {
    const budget = 1000;
    const cache = new PredictionCache<Uint8Array>(budget, sizeOfBytes);
    const small = makeCacheKey('p', [u8(1)]);
    cache.put(small, new Uint8Array(10));
    const big = makeCacheKey('p', [u8(2)]);
    cache.put(big, new Uint8Array(budget));
    assert.equal(cache.has(big), false);
    assert.equal(cache.get(big), undefined);
    assert.equal(cache.has(small), true);
    assert.equal(cache.stats.evictions, 0);
    assert.equal(cache.stats.entries, 1);
  });

  it('replacing a cached value with an oversize one does not keep serving the old value', () => {
    const cache = new PredictionCache<Uint8Array>(1000, sizeOfBytes);
    const k = makeCacheKey('p', [u8(1)]);
    cache.put(k, new Uint8Array(10));
    cache.put(k, new Uint8Array(5000));
    assert.equal(cache.get(k), undefined);
  });

  it('clear() drops every entry', () => {
    const cache = new PredictionCache<Uint8Array>(1 << 20, sizeOfBytes);
    const keys = [1, 2, 3].map((i) => makeCacheKey('p', [u8(i)]));
    for (const k of keys) cache.put(k, new Uint8Array(4));
    cache.clear();
    assert.equal(cache.stats.entries, 0);
    assert.equal(cache.stats.bytes, 0);
    for (const k of keys) assert.equal(cache.has(k), false);
    cache.put(keys[0]!, u8(9));
    assert.deepEqual(cache.get(keys[0]!), u8(9));
  });
});

describe('prediction cache: kept entries own their bytes', () => {
  it('copies key parts and values that are views into shared memory, so the memory can be reused', () => {
    const shared = new Uint8Array(1024);
    shared.set([1, 2, 3, 4], 64);
    const value = shared.subarray(128, 132);
    value.set([9, 9, 9, 9]);
    const cache = new PredictionCache<Uint8Array>(1 << 16, (v) => v.byteLength, (v) => (v.byteLength === v.buffer.byteLength ? v : v.slice()));
    cache.put(makeCacheKey('m', [shared.subarray(64, 68)]), value);
    shared.fill(0); // the decoder's slab is reused for other queries
    const hit = cache.get(makeCacheKey('m', [new Uint8Array([1, 2, 3, 4])]));
    assert.deepEqual(hit && Array.from(hit), [9, 9, 9, 9]);
    assert.equal(cache.get(makeCacheKey('m', [new Uint8Array(4)])), undefined);
  });
});

describe('prediction cache: CLOCK eviction', () => {
  // Keys 'k' + 4 bytes = 6 key bytes; value 34 bytes; + overhead = 200 bytes per entry.
  const ENTRY = 200;
  const key = (i: number): CacheKey => makeCacheKey('k', [u8(i, 0, 0, 0)]);
  const val = (i: number): Uint8Array => new Uint8Array(34).fill(i);

  it('sizes test entries as intended', () => {
    const cache = new PredictionCache<Uint8Array>(1 << 20, sizeOfBytes);
    cache.put(key(1), val(1));
    assert.equal(cache.stats.bytes, ENTRY);
  });

  it('a referenced entry survives one sweep while unreferenced ones are evicted first', () => {
    const cache = new PredictionCache<Uint8Array>(3 * ENTRY, sizeOfBytes);
    for (const i of [1, 2, 3]) cache.put(key(i), val(i));
    assert.equal(cache.stats.bytes, 3 * ENTRY);
    assert.deepEqual(cache.get(key(1)), val(1)); // 1 is referenced
    cache.put(key(4), val(4));
    assert.deepEqual([1, 2, 3, 4].map((i) => cache.has(key(i))), [true, false, true, true], '2 goes, 1 gets its second chance');
    cache.put(key(5), val(5));
    assert.deepEqual([1, 3, 4, 5].map((i) => cache.has(key(i))), [true, false, true, true], '3 goes before 1');
    cache.put(key(6), val(6));
    assert.equal(cache.has(key(1)), false, 'without a new lookup, 1 goes on the next sweep');
    assert.equal(cache.stats.evictions, 3);
    assert.equal(cache.stats.entries, 3);
    assert.ok(cache.stats.bytes <= 3 * ENTRY);
  });

  it('each lookup earns one more second chance', () => {
    const cache = new PredictionCache<Uint8Array>(3 * ENTRY, sizeOfBytes);
    for (const i of [1, 2, 3]) cache.put(key(i), val(i));
    for (let next = 4; next < 12; next++) {
      cache.get(key(1));
      cache.put(key(next), val(next));
      assert.ok(cache.has(key(1)), `hot entry evicted when inserting ${next}`);
      assert.ok(cache.has(key(next)));
    }
  });

  it('evicts as many entries as a large insert needs', () => {
    const cache = new PredictionCache<Uint8Array>(4 * ENTRY, sizeOfBytes);
    for (const i of [1, 2, 3, 4]) cache.put(key(i), val(i));
    const big = key(9);
    cache.put(big, new Uint8Array(34 + 2 * ENTRY)); // 3 entries' worth
    assert.ok(cache.has(big));
    assert.equal(cache.stats.entries, 2);
    assert.ok(cache.stats.bytes <= 4 * ENTRY);
  });

  it('never exceeds the byte budget and always serves the last value put (seeded workload)', () => {
    const budget = 20_000;
    const cache = new PredictionCache<Uint8Array>(budget, sizeOfBytes);
    const prng = new Prng(2024);
    const pool = Array.from({ length: 200 }, (_, i) => makeCacheKey(`m:1|UINT8[${i % 7}]`, [new Uint8Array(1 + (i % 13)).fill(i)]));
    const last = new Map<number, Uint8Array>();
    for (let step = 0; step < 20_000; step++) {
      const i = prng.int(pool.length);
      const k = pool[i]!;
      if (prng.next() < 0.5) {
        const v = new Uint8Array(prng.next() < 0.1 ? prng.int(5000) : prng.int(300));
        cache.put(k, v);
        last.set(i, v);
      } else {
        const got = cache.get(k);
        if (got !== undefined) assert.equal(got, last.get(i), `key ${i} served a stale value`);
      }
      assert.ok(cache.stats.bytes <= budget, `bytes ${cache.stats.bytes} over budget`);
      if (step % 500 === 0) {
        assert.equal(cache.stats.entries, pool.filter((x) => cache.has(x)).length);
      }
    }
    assert.ok(cache.stats.evictions > 100);
  });
});

describe('prediction cache: coalescing', () => {
  function recorder(): { calls: { who: string; err: unknown; value: unknown }[]; waiter(who: string): Waiter<string> } {
    const calls: { who: string; err: unknown; value: unknown }[] = [];
    return { calls, waiter: (who) => (err, value) => calls.push({ who, err, value }) };
  }

  it('the first caller leads, identical followers join', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const r = recorder();
    const k = () => makeCacheKey('m:1', [u8(1, 2, 3)]);
    assert.equal(cache.joinOrLead(k(), r.waiter('lead')), false);
    assert.equal(cache.joinOrLead(k(), r.waiter('f1')), true);
    assert.equal(cache.joinOrLead(k(), r.waiter('f2')), true);
    assert.equal(cache.joinOrLead(makeCacheKey('m:1', [u8(1, 2, 4)]), r.waiter('other')), false);
    assert.equal(cache.stats.coalesced, 2);
    assert.equal(cache.stats.misses, 2);
    assert.equal(cache.inflightCount(), 2);
    assert.equal(r.calls.length, 0, 'nobody is answered before complete/fail');
  });

  it('complete() answers every waiter (leader first) with the same value and caches it', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const r = recorder();
    const k = makeCacheKey('m:1', [u8(9)]);
    cache.joinOrLead(k, r.waiter('lead'));
    cache.joinOrLead(makeCacheKey('m:1', [u8(9)]), r.waiter('f1'));
    cache.joinOrLead(makeCacheKey('m:1', [u8(9)]), r.waiter('f2'));
    cache.complete(k, 'result');
    assert.deepEqual(r.calls, [
      { who: 'lead', err: null, value: 'result' },
      { who: 'f1', err: null, value: 'result' },
      { who: 'f2', err: null, value: 'result' },
    ]);
    assert.equal(cache.get(makeCacheKey('m:1', [u8(9)])), 'result');
    assert.equal(cache.inflightCount(), 0);
    // The next identical query is a hit; a new in-flight one would lead again.
    assert.equal(cache.joinOrLead(k, r.waiter('later')), false);
  });

  it('fail() answers every waiter with the error and caches nothing', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const r = recorder();
    const k = makeCacheKey('m:1', [u8(5)]);
    const err = { code: 'MODEL_ERROR', message: 'boom' };
    cache.joinOrLead(k, r.waiter('lead'));
    cache.joinOrLead(k, r.waiter('f1'));
    cache.fail(k, err);
    assert.deepEqual(r.calls.map((c) => [c.who, c.err, c.value]), [['lead', err, undefined], ['f1', err, undefined]]);
    assert.equal(cache.has(k), false);
    assert.equal(cache.stats.entries, 0);
    assert.equal(cache.inflightCount(), 0);
    assert.equal(cache.joinOrLead(k, r.waiter('retry')), false, 'after a failure the next caller leads a fresh run');
  });

  it('colliding hashes with different bytes never coalesce or answer each other', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const r = recorder();
    const a = forged('m:1', [u8(1)], 5);
    const b = forged('m:1', [u8(2)], 5);
    assert.equal(cache.joinOrLead(a, r.waiter('a')), false);
    assert.equal(cache.joinOrLead(b, r.waiter('b')), false);
    cache.complete(b, 'B');
    assert.deepEqual(r.calls.map((c) => c.who), ['b']);
    cache.complete(a, 'A');
    assert.deepEqual(r.calls.map((c) => [c.who, c.value]), [['b', 'B'], ['a', 'A']]);
    assert.equal(cache.get(a), 'A');
    assert.equal(cache.get(b), 'B');
  });

  it('leave() detaches one waiter and returns how many remain', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const r = recorder();
    const k = makeCacheKey('m:1', [u8(3)]);
    const lead = r.waiter('lead');
    const f1 = r.waiter('f1');
    const f2 = r.waiter('f2');
    cache.joinOrLead(k, lead);
    cache.joinOrLead(k, f1);
    cache.joinOrLead(k, f2);
    assert.equal(cache.leave(k, f1), 2);
    cache.complete(k, 'v');
    assert.deepEqual(r.calls.map((c) => c.who), ['lead', 'f2']);
  });

  it('when the last waiter leaves, the in-flight record is dropped', () => {
    const cache = new PredictionCache<string>(1 << 20, (v) => v.length);
    const r = recorder();
    const k = makeCacheKey('m:1', [u8(4)]);
    const lead = r.waiter('lead');
    const f1 = r.waiter('f1');
    cache.joinOrLead(k, lead);
    cache.joinOrLead(k, f1);
    assert.equal(cache.leave(k, lead), 1);
    assert.equal(cache.leave(k, f1), 0);
    assert.equal(cache.inflightCount(), 0);
    assert.equal(cache.leave(k, f1), 0, 'leaving twice is harmless');
    assert.equal(cache.leave(makeCacheKey('m:1', [u8(99)]), f1), 0, 'unknown key');
    assert.equal(cache.joinOrLead(k, r.waiter('next')), false, 'the next identical query leads again');
    assert.equal(r.calls.length, 0);
  });
});

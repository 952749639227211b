import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { own, SlabAllocator } from '../../src/tensor/slab.js';

const bytes = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
/** Views of 100 KB: ten fill a 1 MiB slab, the eleventh starts the next one. */
const fillSlab = (a: SlabAllocator, v: number): Uint8Array[] => Array.from({ length: 10 }, () => a.copy(bytes(100_000, v)));

describe('slab allocator', () => {
  it('copies into 8-byte aligned, non-overlapping views of one slab', () => {
    const a = new SlabAllocator();
    const views = [3, 8, 13, 1].map((n, i) => a.copy(bytes(n, i + 1)));
    assert.ok(views.every((v) => v.buffer === views[0]!.buffer && v.byteOffset % 8 === 0));
    views.forEach((v, i) => assert.deepEqual(Array.from(v), Array(v.length).fill(i + 1)));
    for (let i = 1; i < views.length; i++) assert.ok(views[i]!.byteOffset >= views[i - 1]!.byteOffset + views[i - 1]!.byteLength);
    assert.equal(a.copy(bytes(200_000, 9)).buffer, views[0]!.buffer, 'a large tensor that fits stays in the slab');
    assert.notEqual(a.copy(bytes(900_000, 9)).buffer, views[0]!.buffer, 'a large tensor that does not fit gets its own buffer');
  });

  it('reserve() puts the next copies back to back in one slab (a frame never straddles two)', () => {
    const a = new SlabAllocator();
    const before = a.copy(bytes(700_000, 1));
    a.reserve(400_000); // does not fit after 700 KB: a fresh slab
    const run = Array.from({ length: 4 }, (_, i) => a.copy(bytes(100_000, i)));
    assert.notEqual(run[0]!.buffer, before.buffer);
    for (let i = 1; i < run.length; i++) {
      assert.equal(run[i]!.buffer, run[0]!.buffer);
      assert.equal(run[i]!.byteOffset, run[i - 1]!.byteOffset + 100_000);
    }
    a.reserve(3_000_000); // larger than a slab: a slab of its own size
    const big = Array.from({ length: 3 }, () => a.copy(bytes(1_000_000, 5)));
    assert.ok(big.every((v) => v.buffer === big[0]!.buffer));
  });

  it('alloc() carves n bytes from slab memory (shared when asked), from a fresh slab when the current one lacks the room, recycled like copies', () => {
    const a = new SlabAllocator(16, true);
    const first = a.copy(bytes(300_000, 1));
    const rows = a.alloc(800_000); // 800 KB does not fit after 300 KB: the next slab, not a buffer of its own
    assert.ok(rows.buffer instanceof SharedArrayBuffer);
    assert.notEqual(rows.buffer, first.buffer);
    assert.equal(rows.byteLength, 800_000);
    assert.equal(rows.byteOffset % 8, 0);
    const next = a.copy(bytes(100_000, 2));
    assert.equal(next.buffer, rows.buffer, 'later copies go on in the same slab');
    assert.ok(next.byteOffset >= rows.byteOffset + rows.byteLength);
    const huge = a.alloc(3_000_000);
    assert.ok(huge.buffer instanceof SharedArrayBuffer && huge.byteLength === 3_000_000, 'larger than a slab: a slab of its own size');
    // The 800 KB slab comes back once its two views are released and it is full.
    a.release(rows);
    a.release(next);
    a.release(first);
    const reused0 = a.stats.reused;
    fillSlab(a, 3);
    fillSlab(a, 4);
    assert.ok(a.stats.reused > reused0);
  });

  it('reuses a full slab only once every view of it is released', () => {
    const a = new SlabAllocator();
    const first = fillSlab(a, 1);
    const slab = first[0]!.buffer;
    for (const v of first.slice(1)) a.release(v);
    fillSlab(a, 2); // rotates: the first slab is full but one view is still held
    fillSlab(a, 3);
    assert.deepEqual(Array.from(first[0]!.subarray(0, 4)), [1, 1, 1, 1], 'a held view is never overwritten');
    assert.equal(a.stats.reused, 0);
    a.release(first[0]!);
    const next = fillSlab(a, 4);
    assert.equal(a.stats.reused, 1);
    assert.ok(next.some((v) => v.buffer === slab), 'the released slab came back');
  });

  it('a release without a matching view poisons the slab: it is never reused', () => {
    const a = new SlabAllocator();
    const first = fillSlab(a, 1);
    for (const v of first) a.release(v);
    a.release(first[0]!); // one release too many
    fillSlab(a, 2);
    fillSlab(a, 3);
    assert.equal(a.stats.reused, 0);
    assert.ok(!fillSlab(a, 4).some((v) => v.buffer === first[0]!.buffer));
  });

  it('releasing bytes that are not slab views is a no-op; own() copies views only', () => {
    const a = new SlabAllocator();
    a.release(new Uint8Array(8));
    const plain = new Uint8Array(4);
    assert.equal(own(plain), plain);
    const view = a.copy(bytes(4, 7));
    const owned = own(view);
    assert.notEqual(owned.buffer, view.buffer);
    assert.deepEqual(Array.from(owned), [7, 7, 7, 7]);
  });
});

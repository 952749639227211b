import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineQueue, type Queued } from '../../src/engine/deadline-queue.js';
import { Prng } from '../../src/modelgen/prng.js';

interface Item extends Queued {
  id: number;
}

let nextSeq = 0;
const item = (deadline: number, id = nextSeq): Item => ({ deadline, seq: nextSeq++, heapIndex: -1, id });

const byDeadline = (a: Item, b: Item): number => a.deadline - b.deadline || a.seq - b.seq;

function drain(q: DeadlineQueue<Item>): Item[] {
  const out: Item[] = [];
  for (let x = q.pop(); x; x = q.pop()) out.push(x);
  return out;
}

/** Heap invariant and heapIndex bookkeeping, checked through items(). */
function checkHeap(q: DeadlineQueue<Item>): void {
  const h = q.items();
  assert.equal(h.length, q.size);
  h.forEach((x, i) => {
    assert.equal(x.heapIndex, i, 'heapIndex matches the position');
    if (i > 0) assert.ok(byDeadline(h[(i - 1) >> 1]!, x) < 0, 'parent orders before child');
  });
}

describe('deadline-queue', () => {
  it('is empty at first', () => {
    const q = new DeadlineQueue<Item>();
    assert.equal(q.size, 0);
    assert.equal(q.peek(), undefined);
    assert.equal(q.pop(), undefined);
  });

  it('pops in deadline order', () => {
    const q = new DeadlineQueue<Item>();
    const deadlines = [50, 10, 40, 20, 30, 5, 100, 1];
    for (const d of deadlines) q.push(item(d));
    assert.equal(q.peek()!.deadline, 1);
    assert.deepEqual(drain(q).map((x) => x.deadline), [...deadlines].sort((a, b) => a - b));
    assert.equal(q.size, 0);
  });

  it('breaks deadline ties FIFO by seq', () => {
    const q = new DeadlineQueue<Item>();
    const items = [item(7, 0), item(3, 1), item(7, 2), item(7, 3), item(3, 4), item(7, 5)];
    for (const x of items) q.push(x);
    assert.deepEqual(drain(q).map((x) => x.id), [1, 4, 0, 2, 3, 5]);
  });

  it('remove() from the middle keeps order and bookkeeping', () => {
    const q = new DeadlineQueue<Item>();
    const items = Array.from({ length: 20 }, (_, i) => item((i * 7) % 20, i));
    for (const x of items) q.push(x);
    const victims = [items[3]!, items[11]!, items[0]!, items[19]!];
    for (const v of victims) {
      assert.equal(q.remove(v), true);
      assert.equal(v.heapIndex, -1);
      checkHeap(q);
    }
    const want = items.filter((x) => !victims.includes(x)).sort(byDeadline).map((x) => x.id);
    assert.deepEqual(drain(q).map((x) => x.id), want);
  });

  it('remove() of a popped, removed or foreign item returns false and changes nothing', () => {
    const q = new DeadlineQueue<Item>();
    const other = new DeadlineQueue<Item>();
    const a = item(1);
    const b = item(2);
    const c = item(3);
    q.push(a);
    q.push(b);
    other.push(c);
    const popped = q.pop()!;
    assert.equal(popped, a);
    assert.equal(a.heapIndex, -1);
    assert.equal(q.remove(a), false);
    assert.equal(q.remove(c), false, 'c is at index 0 of another queue');
    assert.equal(q.size, 1);
    assert.equal(q.remove(b), true);
    assert.equal(q.remove(b), false);
    assert.equal(q.size, 0);
    assert.equal(other.size, 1);
    assert.equal(other.peek(), c);
  });

  it('an item can be pushed again after being removed', () => {
    const q = new DeadlineQueue<Item>();
    const a = item(5);
    const b = item(6);
    q.push(a);
    q.push(b);
    q.remove(a);
    q.push(a);
    assert.deepEqual(drain(q), [a, b]);
  });

  it('matches a sorted reference under random push/pop/remove (seeded)', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const prng = new Prng(seed);
      const q = new DeadlineQueue<Item>();
      let ref: Item[] = [];
      const gone: Item[] = [];
      for (let step = 0; step < 4000; step++) {
        const r = prng.next();
        if (r < 0.5) {
          // Few distinct deadlines so that ties are common.
          const x = item(prng.int(40));
          q.push(x);
          ref.push(x);
        } else if (r < 0.7) {
          ref.sort(byDeadline);
          const want = ref.shift();
          const got = q.pop();
          assert.equal(got, want);
          if (got) gone.push(got);
        } else if (r < 0.9) {
          if (ref.length === 0) continue;
          const victim = ref[prng.int(ref.length)]!;
          assert.equal(q.remove(victim), true);
          ref = ref.filter((x) => x !== victim);
          gone.push(victim);
        } else if (gone.length > 0) {
          assert.equal(q.remove(gone[prng.int(gone.length)]!), false);
        }
        assert.equal(q.size, ref.length);
        if (ref.length > 0) assert.equal(q.peek(), [...ref].sort(byDeadline)[0]);
        if (step % 50 === 0) checkHeap(q);
      }
      assert.deepEqual(drain(q), ref.sort(byDeadline));
    }
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Query } from '../../src/engine/batch.js';
import { ShapeQueues } from '../../src/engine/shape-queues.js';

let seq = 0;
function query(sig: string, rows: number, deadline: number, enqueuedAt = 0): Query {
  return { sig, rows, deadline, enqueuedAt, seq: seq++, heapIndex: -1, inputs: [], requests: 1, done: () => {}, finished: false };
}

interface Capacity { now: number; waitMs: number; idle: number; pipelinable: number }
const cap = (over: Partial<Capacity> = {}): Capacity => ({ now: 0, waitMs: 0, idle: 1, pipelinable: 0, ...over });
/** next() with these capacities: the chosen signature's queue and when a waiting one is due. */
const next = (qs: ShapeQueues, c: Capacity) => {
  const shape = qs.next(c.now, c.waitMs, c.idle, c.pipelinable);
  return { shape, until: qs.dueAt };
};

describe('shape queues: one deadline queue per signature', () => {
  it('counts rows per signature and in all, through push, remove and pop', () => {
    const qs = new ShapeQueues(() => 8);
    const a1 = query('4;', 2, 30);
    const b1 = query('8;', 3, 10);
    const a2 = query('4;', 1, 20);
    for (const q of [a1, b1, a2]) qs.push(q);
    assert.equal(qs.rows, 6);
    assert.equal(qs.shapes, 2);
    assert.equal(qs.peek(), b1, 'the most urgent of all');
    assert.equal(qs.remove(a2), true);
    assert.equal(qs.remove(a2), false, 'already gone');
    assert.equal(qs.rows, 5);
    assert.equal(qs.pop(), b1);
    assert.equal(qs.pop(), a1);
    assert.equal(qs.pop(), undefined);
    assert.equal(qs.rows, 0);
  });

  it('a signature with a full batch goes, even when a query of another shape is more urgent', () => {
    const qs = new ShapeQueues(() => 8);
    qs.push(query('8;', 1, 5));
    for (let i = 0; i < 8; i++) qs.push(query('4;', 1, 50 + i));
    // Only a pipeline slot free: only full batches may go, and only '4;' has one.
    const n = next(qs, cap({ idle: 0, pipelinable: 1 }));
    assert.equal(n.shape?.sig, '4;');
    // No replica can take anything: nothing goes, and nothing is due (an answer will pump again).
    assert.deepEqual(next(qs, cap({ idle: 0, pipelinable: 0, waitMs: 1 })), { shape: null, until: Infinity });
  });

  it('of several that may go, the one with the most urgent head goes first', () => {
    const qs = new ShapeQueues(() => 8);
    qs.push(query('4;', 1, 50));
    qs.push(query('8;', 1, 20));
    qs.push(query('4;', 1, 10));
    assert.equal(next(qs, cap()).shape?.sig, '4;');
  });

  it('waits per signature: the batch wait counts from each signature\'s own oldest query', () => {
    const qs = new ShapeQueues(() => 8);
    qs.push(query('4;', 1, 1000, 5));
    qs.push(query('8;', 1, 1000, 2));
    const n = next(qs, cap({ now: 3, waitMs: 4 }));
    assert.equal(n.shape, null);
    assert.equal(n.until, 6, "'8;' is due first (2 + 4)");
    assert.equal(next(qs, cap({ now: 6, waitMs: 4 })).shape?.sig, '8;');
  });

  it("a batch takes only its signature's queries; another shape never cuts it short", () => {
    const qs = new ShapeQueues(() => 8);
    // In deadline order: a 1-row '4;', a 7-row '8;' (which would not fit beside it under cap 8), six more '4;'.
    qs.push(query('4;', 1, 1));
    qs.push(query('8;', 7, 2));
    for (let i = 0; i < 6; i++) qs.push(query('4;', 1, 3 + i));
    const n = next(qs, cap());
    const batch = qs.take(n.shape!, Infinity);
    assert.equal(batch.queries.length, 7);
    assert.ok(batch.queries.every((q) => q.sig === '4;'));
    assert.equal(qs.rows, 7);
    assert.equal(next(qs, cap()).shape?.sig, '8;');
  });

  it('each signature has its own cap, set when its queue is made, and full batches count against it', () => {
    const made: number[] = [];
    const qs = new ShapeQueues((rowElems) => {
      made.push(rowElems);
      return rowElems === 4 ? 2 : 16;
    });
    const t = (cols: number) => ({ name: 'x', datatype: 'FP32' as const, shape: [1, cols], data: new Uint8Array(cols * 4) });
    const a = { ...query('4;', 1, 10), inputs: [t(4)] };
    const b = { ...query('8;', 1, 5), inputs: [t(8)] };
    qs.push(b);
    qs.push(a);
    qs.push({ ...query('4;', 1, 11), inputs: [t(4)] });
    assert.deepEqual(made, [8, 4], 'one call per new signature, with the elements of one row');
    assert.deepEqual(qs.caps().map((c) => [c.sig, c.cap, c.queuedRows]), [['8;', 16, 1], ['4;', 2, 2]]);
    // Only a pipeline slot: '4;' holds a full batch under its cap of 2; '8;' (1 of 16) does not, though more urgent.
    assert.equal(next(qs, cap({ idle: 0, pipelinable: 1 })).shape?.sig, '4;');
  });

  it('does not keep more than a few empty signature queues', () => {
    const qs = new ShapeQueues(() => 8);
    for (let i = 0; i < 100; i++) {
      const q = query(`${i};`, 1, i);
      qs.push(q);
      qs.remove(q);
    }
    assert.ok(qs.shapes <= 9, `${qs.shapes} signature queues`);
    assert.equal(qs.rows, 0);
  });

  it('a signature whose empty queue was dropped comes back with the cap it had learned', () => {
    const qs = new ShapeQueues(() => 8);
    const a = query('a;', 1, 0);
    qs.push(a);
    const shape = qs.next(0, 0, 1, 0)!;
    assert.equal(shape.sig, 'a;');
    shape.cap = 37; // as the executor's AIMD moves it
    qs.take(shape, Infinity);
    // Many other shapes come and go: 'a;' is dropped among the empty queues.
    for (let i = 0; i < 20; i++) {
      const q = query(`${i};`, 1, i);
      qs.push(q);
      qs.remove(q);
    }
    assert.ok(!qs.caps().some((c) => c.sig === 'a;'), 'the empty queue of a; was dropped');
    qs.push(query('a;', 1, 0));
    assert.equal(qs.caps().find((c) => c.sig === 'a;')?.cap, 37);
    // A signature never seen starts at firstCap.
    qs.push(query('new;', 1, 0));
    assert.equal(qs.caps().find((c) => c.sig === 'new;')?.cap, 8);
  });
});

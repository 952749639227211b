import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideBatch, type BatchState } from '../../src/engine/batch-former.js';

const state = (over: Partial<BatchState> = {}): BatchState => ({
  now: 1000, queuedRows: 1, oldestEnqueuedAt: 1000, cap: 8, waitMs: 5, freeReplicas: 1, ...over,
});

describe('batch-former', () => {
  it('is idle with an empty queue, whatever else holds', () => {
    assert.deepEqual(decideBatch(state({ queuedRows: 0 })), { kind: 'idle' });
    assert.deepEqual(decideBatch(state({ queuedRows: 0, waitMs: 0, oldestEnqueuedAt: 0 })), { kind: 'idle' });
  });

  it('is idle with no free replica, even with a full batch or an overdue query', () => {
    assert.deepEqual(decideBatch(state({ freeReplicas: 0, queuedRows: 100 })), { kind: 'idle' });
    assert.deepEqual(decideBatch(state({ freeReplicas: 0, oldestEnqueuedAt: 0 })), { kind: 'idle' });
  });

  it('dispatches when the queue holds at least a full batch', () => {
    assert.deepEqual(decideBatch(state({ queuedRows: 8 })), { kind: 'dispatch' });
    assert.deepEqual(decideBatch(state({ queuedRows: 50, waitMs: 1e9 })), { kind: 'dispatch' });
  });

  it('waits until the oldest query has waited the timeout', () => {
    assert.deepEqual(decideBatch(state({ queuedRows: 7, now: 1000, oldestEnqueuedAt: 998, waitMs: 5 })), { kind: 'wait', until: 1003 });
    assert.deepEqual(decideBatch(state({ now: 1002.5, oldestEnqueuedAt: 1000, waitMs: 2.75 })), { kind: 'wait', until: 1002.75 });
  });

  it('dispatches a partial batch once now >= oldest + wait', () => {
    assert.deepEqual(decideBatch(state({ now: 1005, oldestEnqueuedAt: 1000, waitMs: 5 })), { kind: 'dispatch' });
    assert.deepEqual(decideBatch(state({ now: 2000, oldestEnqueuedAt: 1000, waitMs: 5 })), { kind: 'dispatch' });
  });

  it('with waitMs 0 dispatches whatever is queued at once', () => {
    assert.deepEqual(decideBatch(state({ waitMs: 0, queuedRows: 1, cap: 64 })), { kind: 'dispatch' });
  });

  it('walks from wait to dispatch as time passes (the executor re-asks at `until`)', () => {
    const s = state({ queuedRows: 3, oldestEnqueuedAt: 1000, waitMs: 4 });
    const first = decideBatch({ ...s, now: 1000 });
    assert.equal(first.kind, 'wait');
    const until = (first as { until: number }).until;
    assert.equal(decideBatch({ ...s, now: until - 0.001 }).kind, 'wait');
    assert.equal(decideBatch({ ...s, now: until }).kind, 'dispatch');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sameStack, stackInputs, stackKey, type StackableRequest } from '../../src/frontend/stacking.js';
import { SlabAllocator } from '../../src/tensor/slab.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const f32 = (vals: number[], shape: number[], name = 'input'): Tensor => ({ name, datatype: 'FP32', shape, data: new Uint8Array(new Float32Array(vals).buffer) });
const req = (inputs: Tensor[], over: Partial<StackableRequest> = {}): StackableRequest => ({ model: 'm', version: 0, timeoutUs: 0, deadlineUnixUs: 0, inputs, outputs: [], ...over });
/** Single-row requests that each differ from req([f32([1, 2], [1, 2])]) in one thing that keeps them out of its stack. */
const differing = (): StackableRequest[] => [
  req([f32([1, 2], [1, 2])], { model: 'n' }),
  req([f32([1, 2], [1, 2])], { version: 2 }),
  req([f32([1, 2], [1, 2])], { timeoutUs: 5 }),
  req([f32([1, 2], [1, 2])], { deadlineUnixUs: 5 }),
  req([f32([1, 2], [1, 2])], { outputs: ['label'] }),
  req([f32([1, 2], [1, 2], 'x')]),
  req([f32([1, 2, 3], [1, 3])]),
  req([f32([1, 2], [1, 1, 2])]),
  req([{ ...f32([1, 2], [1, 2]), datatype: 'INT32' }]),
];

describe('stacking: which requests share a stack', () => {
  it('single-row requests that agree on model, version, deadline, outputs and row shapes share a key', () => {
    const a = stackKey(req([f32([1, 2], [1, 2])]));
    assert.notEqual(a, null);
    assert.equal(stackKey(req([f32([3, 4], [1, 2])])), a, 'different values, same stack');
    for (const other of differing()) assert.notEqual(stackKey(other), a);
  });

  it('sameStack agrees with the key for a stackable first request, without building it', () => {
    const first = req([f32([1, 2], [1, 2])]);
    const others = [req([f32([3, 4], [1, 2])]), ...differing(), req([f32([1, 2, 3, 4], [2, 2])]), req([])];
    for (const o of others) assert.equal(sameStack(first, o), stackKey(o) === stackKey(first), JSON.stringify(o.inputs.map((t) => t.shape)));
    assert.equal(sameStack(first, others[0]!), true);
  });

  it('requests of several rows, scalars and requests without inputs run alone', () => {
    assert.equal(stackKey(req([f32([1, 2, 3, 4], [2, 2])])), null);
    assert.equal(stackKey(req([f32([1], [])])), null);
    assert.equal(stackKey(req([])), null);
  });
});

describe('stacking: inputs and outputs', () => {
  it('stacks rows along dim 0: a view when the decoder laid them out adjacently, a copy otherwise', () => {
    const slab = new SlabAllocator();
    const rows = [[1, 2], [3, 4], [5, 6]].map((v) => ({ ...f32(v, [1, 2]), data: slab.copy(f32(v, [1, 2]).data) }));
    const [adjacent] = stackInputs(rows.map((t) => req([t])));
    assert.deepEqual(adjacent!.shape, [3, 2]);
    assert.equal(adjacent!.data.buffer, rows[0]!.data.buffer, 'no copy');
    assert.deepEqual(Array.from(new Float32Array(adjacent!.data.slice().buffer)), [1, 2, 3, 4, 5, 6]);
    const apart = [f32([1, 2], [1, 2]), f32([3, 4], [1, 2])];
    const [copied] = stackInputs(apart.map((t) => req([t])));
    assert.deepEqual(Array.from(new Float32Array(copied!.data.slice().buffer)), [1, 2, 3, 4]);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SkiffError, type ErrorCode } from '../../src/errors.js';
import { specOf, type ModelSpec } from '../../src/engine/spec.js';
import { outputSelector, validateInputs } from '../../src/engine/validate.js';
import { ELEMENT_SIZE, type DataType } from '../../src/tensor/datatype.js';
import type { Tensor } from '../../src/tensor/tensor.js';

function tensor(name: string, datatype: DataType, shape: number[], byteLength?: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, datatype, shape, data: new Uint8Array(byteLength ?? n * ELEMENT_SIZE[datatype]) };
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof SkiffError && e.code === code);
}

/** x [N,4] FP32, k [N,1] INT64 -> y [N,4] FP32, k_next [N,1] INT64. */
const multi: ModelSpec = specOf({
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 4] },
    { name: 'k', datatype: 'INT64', shape: [-1, 1] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, 4] },
    { name: 'k_next', datatype: 'INT64', shape: [-1, 1] },
  ],
});

/** Fixed [2,3] input: not batchable. */
const fixed: ModelSpec = specOf({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 3] }],
});

describe('specOf', () => {
  it('is batchable only when every input has a variable leading dim', () => {
    assert.equal(multi.batchable, true);
    assert.equal(fixed.batchable, false);
    const mixed = specOf({
      inputs: [{ name: 'a', datatype: 'FP32', shape: [-1, 2] }, { name: 'b', datatype: 'FP32', shape: [3] }],
      outputs: [],
    });
    assert.equal(mixed.batchable, false);
    assert.equal(specOf({ inputs: [], outputs: [] }).batchable, false);
    assert.equal(specOf({ inputs: [{ name: 's', datatype: 'FP32', shape: [] }], outputs: [] }).batchable, false);
  });
});

describe('validateInputs', () => {
  it('accepts valid inputs in any order and returns them in model order with the batch size', () => {
    const x = tensor('x', 'FP32', [3, 4]);
    const k = tensor('k', 'INT64', [3, 1]);
    const r = validateInputs(multi, [k, x]);
    assert.equal(r.rows, 3);
    assert.equal(r.ordered[0], x);
    assert.equal(r.ordered[1], k);
  });

  it('a missing input is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, []), 'INVALID_INPUT');
  });

  it('an unknown input is INVALID_INPUT (with the right count or an extra one)', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4]), tensor('kk', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4]), tensor('k', 'INT64', [1, 1]), tensor('z', 'FP32', [1])]), 'INVALID_INPUT');
  });

  it('a duplicated input is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4]), tensor('x', 'FP32', [1, 4])]), 'INVALID_INPUT');
  });

  it('a wrong datatype is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP64', [1, 4]), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4]), tensor('k', 'INT32', [1, 1])]), 'INVALID_INPUT');
  });

  it('a wrong rank is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [4]), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 1, 4]), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
  });

  it('a wrong fixed dim is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 5]), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(fixed, [tensor('x', 'FP32', [3, 2])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(fixed, [tensor('x', 'FP32', [1, 3])]), 'INVALID_INPUT');
  });

  it('a byte length that does not match the shape is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4], 15), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1, 4], 20), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [2, 4], 16), tensor('k', 'INT64', [2, 1])]), 'INVALID_INPUT');
  });

  it('negative or fractional dims in a query are INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [-1, 4], 16), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [1.5, 4], 24), tensor('k', 'INT64', [1, 1])]), 'INVALID_INPUT');
  });

  it('a zero batch is INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [0, 4]), tensor('k', 'INT64', [0, 1])]), 'INVALID_INPUT');
  });

  it('inputs that disagree on the batch size are INVALID_INPUT', () => {
    throwsCode(() => validateInputs(multi, [tensor('x', 'FP32', [2, 4]), tensor('k', 'INT64', [3, 1])]), 'INVALID_INPUT');
  });

  it('a non-batchable (fixed shape) model counts every query as 1 row', () => {
    const x = tensor('x', 'FP32', [2, 3]);
    const r = validateInputs(fixed, [x]);
    assert.equal(r.rows, 1);
    assert.deepEqual(r.ordered, [x]);
  });

  it('BYTES inputs are UNSUPPORTED_DATATYPE', () => {
    const spec = specOf({ inputs: [{ name: 's', datatype: 'BYTES', shape: [-1] }], outputs: [] });
    throwsCode(() => validateInputs(spec, [{ name: 's', datatype: 'BYTES', shape: [1], data: new Uint8Array(8) }]), 'UNSUPPORTED_DATATYPE');
  });
});

describe('outputSelector', () => {
  const outs: Tensor[] = [tensor('y', 'FP32', [1, 4]), tensor('k_next', 'INT64', [1, 1])];

  it('returns every output when no names are given', () => {
    assert.deepEqual(outputSelector(multi, undefined)(outs), outs);
    assert.deepEqual(outputSelector(multi, [])(outs), outs);
  });

  it('picks the named outputs in the requested order', () => {
    assert.deepEqual(outputSelector(multi, ['k_next'])(outs), [outs[1]]);
    assert.deepEqual(outputSelector(multi, ['k_next', 'y'])(outs), [outs[1], outs[0]]);
  });

  it('an unknown output name is INVALID_INPUT, before any query runs', () => {
    throwsCode(() => outputSelector(multi, ['y', 'nope']), 'INVALID_INPUT');
  });
});

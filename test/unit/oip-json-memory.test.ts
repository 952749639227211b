/**
 * The JSON paths (OIP `data`, Clipper `input`) convert nested lists straight into the typed array: no
 * flattened copy of the input (8 bytes per element on the JS heap, plus its growth garbage).
 * Measured as the large-object space of the JS heap grown by one conversion of an already-parsed
 * body: a flattened copy of millions of elements can only live there, while the output lives
 * outside the JS heap (an ArrayBuffer) and per-element garbage of unoptimised code (boxed numbers,
 * iterator results) is small and goes to the young generation.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { jsonTensorBytes } from '../../src/protocol/oip-decode.js';
import { numbersToBytes } from '../../src/frontend/clipper.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes in V8's large-object spaces (old and young): where any array of over ~128 KiB goes. */
function largeObjects(): number {
  return getHeapSpaceStatistics().filter((sp) => sp.space_name.includes('large_object')).reduce((n, sp) => n + sp.space_used_size, 0);
}

it('nested JSON data becomes bytes without a flattened copy on the heap', () => {
  const rows = 500_000;
  const width = 4;
  const data = Array.from({ length: rows }, (_, r) => [r & 7, 1, 2, 3]);
  gc();
  const before = largeObjects();
  const bytes = jsonTensorBytes('FP32', data, rows * width, 'inputs[0]', false);
  const grown = largeObjects() - before;
  assert.equal(bytes.byteLength, rows * width * 4);
  const f = new Float32Array(bytes.buffer, bytes.byteOffset, rows * width);
  assert.deepEqual([...f.subarray(4 * 9, 4 * 10)], [1, 1, 2, 3]);
  // A flat copy alone would be 8 bytes per element (16 MB here).
  assert.ok(grown < 1e6, `large objects grew by ${(grown / 1e6).toFixed(1)} MB converting ${rows * width} elements`);
});

it('the walk checks the element count and refuses an irregular overflow early', () => {
  assert.throws(() => jsonTensorBytes('INT32', [[1, 2], [3]], 4, 'x', false), { code: 'INVALID_INPUT' });
  assert.throws(() => jsonTensorBytes('INT32', [[1, 2], [3, 4, 5]], 4, 'x', false), { code: 'INVALID_INPUT' });
  assert.throws(() => jsonTensorBytes('INT32', [[1, 2], [3, 'a']], 4, 'x', false), { code: 'INVALID_INPUT' });
  const mixed = jsonTensorBytes('INT32', [1, [2, [3]], 4], 4, 'x', false);
  assert.deepEqual([...new Int32Array(mixed.buffer)], [1, 2, 3, 4]);
  const strings = jsonTensorBytes('BYTES', [['a', 'bc'], ['']], 3, 'x', false);
  assert.deepEqual([...strings], [1, 0, 0, 0, 97, 2, 0, 0, 0, 98, 99, 0, 0, 0, 0]);
});

it('data shorter than its shape is refused before the shape\'s worth of memory is allocated', () => {
  gc();
  const before = process.memoryUsage().arrayBuffers;
  for (const data of [[1, 2], [[1], [2]]]) {
    assert.throws(() => jsonTensorBytes('FP64', data, 16_000_000, 'x', false), { code: 'INVALID_INPUT' });
  }
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 1e6, `array buffers grew by ${(grown / 1e6).toFixed(1)} MB`);
});

it('Clipper inputs: nested lists become bytes without a flattened copy on the heap', () => {
  const data = Array.from({ length: 500_000 }, (_, r) => [r & 7, 1, 2, 3]);
  gc();
  const before = largeObjects();
  const bytes = numbersToBytes(data, 'FP32', 'input');
  const grown = largeObjects() - before;
  assert.equal(bytes.byteLength, 2_000_000 * 4);
  assert.ok(grown < 1e6, `large objects grew by ${(grown / 1e6).toFixed(1)} MB converting 2,000,000 elements`);
});

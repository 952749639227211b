import { SkiffError } from '../errors.js';
import { ELEMENT_SIZE, elementCount } from '../tensor/datatype.js';
import type { Tensor, TensorSpec } from '../tensor/tensor.js';
import type { ModelSpec } from './spec.js';

/**
 * Check a query's input tensors against the model's declared inputs, before anything is queued:
 * every input present exactly once, datatype equal, rank equal, fixed dims equal, one batch size
 * across inputs, byte length equal to the shape's. Returns the tensors in the model's input order.
 */
export function validateInputs(spec: ModelSpec, inputs: readonly Tensor[]): { ordered: Tensor[]; rows: number } {
  if (inputs.length !== spec.inputs.length) {
    const names = new Set(inputs.map((t) => t.name));
    const missing = spec.inputs.filter((s) => !names.has(s.name)).map((s) => s.name);
    const known = new Set(spec.inputs.map((s) => s.name));
    const unknown = inputs.filter((t) => !known.has(t.name)).map((t) => t.name);
    throw new SkiffError('INVALID_INPUT', `expected ${spec.inputs.length} input(s) (${spec.inputs.map((s) => s.name).join(', ')}), got ${inputs.length}` +
      (missing.length ? `; missing ${missing.join(', ')}` : '') + (unknown.length ? `; unknown ${unknown.join(', ')}` : ''));
  }
  const ordered: Tensor[] = new Array(spec.inputs.length);
  let rows = -1;
  for (const t of inputs) {
    const i = spec.inputs.findIndex((s) => s.name === t.name);
    if (i < 0) throw new SkiffError('INVALID_INPUT', `unknown input '${t.name}'; the model takes ${spec.inputs.map((s) => s.name).join(', ')}`);
    if (ordered[i]) throw new SkiffError('INVALID_INPUT', `input '${t.name}' given twice`);
    const s = spec.inputs[i]!;
    checkTensor(s, t, spec.bytesInputs);
    if (spec.batchable) {
      const r = t.shape[0]!;
      if (rows >= 0 && r !== rows) throw new SkiffError('INVALID_INPUT', `inputs disagree on the batch size (${rows} vs ${r} for '${t.name}')`);
      rows = r;
    }
    ordered[i] = t;
  }
  if (!spec.batchable) rows = 1;
  if (rows < 1) throw new SkiffError('INVALID_INPUT', 'the batch dimension must be at least 1');
  return { ordered, rows };
}

function checkTensor(s: TensorSpec, t: Tensor, bytesInputs: boolean): void {
  if (t.datatype !== s.datatype) {
    throw new SkiffError('INVALID_INPUT', `input '${t.name}' has datatype ${t.datatype}; the model expects ${s.datatype}`);
  }
  if (s.datatype === 'BYTES' && !bytesInputs) throw new SkiffError('UNSUPPORTED_DATATYPE', `input '${t.name}': BYTES tensors are not supported by this model's runtime`);
  if (t.shape.length !== s.shape.length) {
    throw new SkiffError('INVALID_INPUT', `input '${t.name}' has shape [${t.shape}]; the model expects rank ${s.shape.length} [${s.shape}]`);
  }
  for (let d = 0; d < s.shape.length; d++) {
    const want = s.shape[d]!;
    if (want >= 0 && t.shape[d] !== want) {
      throw new SkiffError('INVALID_INPUT', `input '${t.name}' has shape [${t.shape}]; the model expects [${s.shape}]`);
    }
  }
  const n = elementCount(t.shape);
  if (t.datatype === 'BYTES') {
    if (n < 0 || bytesElements(t.data) !== n) {
      throw new SkiffError('INVALID_INPUT', `input '${t.name}' does not hold ${Math.max(0, n)} BYTES elements (u32 length + bytes each) for shape [${t.shape}]`);
    }
    return;
  }
  if (n < 0 || n * ELEMENT_SIZE[t.datatype] !== t.data.byteLength) {
    throw new SkiffError('INVALID_INPUT', `input '${t.name}' has ${t.data.byteLength} bytes; shape [${t.shape}] of ${t.datatype} needs ${Math.max(0, n) * ELEMENT_SIZE[t.datatype]}`);
  }
}

/** The outputs a client asked for (all when `names` is empty); unknown names are INVALID_INPUT. */
export function outputSelector(spec: ModelSpec, names: readonly string[] | undefined): ((outs: Tensor[]) => Tensor[]) {
  if (!names || names.length === 0) return (outs) => outs;
  const idx = names.map((n) => {
    const i = spec.outputs.findIndex((o) => o.name === n);
    if (i < 0) throw new SkiffError('INVALID_INPUT', `unknown output '${n}'; the model has ${spec.outputs.map((o) => o.name).join(', ')}`);
    return i;
  });
  return (outs) => idx.map((i) => outs[i]!);
}

/** How many BYTES elements (u32 little-endian length + bytes) fill `data` exactly; -1 if they do not. */
function bytesElements(data: Uint8Array): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  let n = 0;
  while (off < data.byteLength) {
    if (off + 4 > data.byteLength) return -1;
    off += 4 + view.getUint32(off, true);
    n++;
  }
  return off === data.byteLength ? n : -1;
}

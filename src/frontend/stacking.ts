/**
 * Stacking: many single-row requests for the same model in one frame become ONE query of K
 * rows (their inputs stacked along the batch dimension), and its answer is cut back into K
 * per-request answers. The engine then does its per-query work (validation, queueing, batch
 * forming, counters, answer routing) once per frame instead of once per request.
 *
 * Pure helpers: which requests may share a stack (the key), building the stacked inputs, and
 * cutting one row out of the stacked outputs. The decoder puts a frame's tensors one after the
 * other in slab memory, so stacking is usually a view over them and copies nothing.
 */
import type { WireRequest } from '../protocol/wire-types.js';
import type { Tensor } from '../tensor/tensor.js';

/** The fields of a wire request that decide whether it can share a stack. */
export type StackableRequest = Pick<WireRequest, 'model' | 'version' | 'timeoutUs' | 'deadlineUnixUs' | 'inputs' | 'outputs'>;

/**
 * The stack a request may join, or null when it must run alone (no inputs, or an input whose
 * leading dimension is not one row). Requests with equal keys agree on everything but their
 * rows: model, version, deadline, wanted outputs, input names, types and row shapes.
 */
export function stackKey(r: StackableRequest): string | null {
  if (r.inputs.length === 0) return null;
  let key = `${r.model}\u0000${r.version}\u0000${r.timeoutUs}\u0000${r.deadlineUnixUs}\u0000${r.outputs.join('\u0001')}`;
  for (const t of r.inputs) {
    if (t.shape.length < 1 || t.shape[0] !== 1) return null;
    key += `\u0000${t.name}\u0001${t.datatype}`;
    for (let i = 1; i < t.shape.length; i++) key += `\u0001${t.shape[i]}`;
  }
  return key;
}

/** The requests' inputs stacked along dim 0 (all share one stack key). */
export function stackInputs(rs: readonly StackableRequest[]): Tensor[] {
  const first = rs[0]!;
  return first.inputs.map((t0, i) => {
    const parts = rs.map((r) => r.inputs[i]!.data);
    return { name: t0.name, datatype: t0.datatype, shape: [rs.length, ...t0.shape.slice(1)], data: concat(parts) };
  });
}

/** One buffer with `parts` one after the other: a view when they already are, else a copy. */
function concat(parts: readonly Uint8Array[]): Uint8Array {
  const first = parts[0]!;
  let end = first.byteOffset + first.byteLength;
  let total = first.byteLength;
  let adjacent = true;
  for (let k = 1; k < parts.length; k++) {
    const p = parts[k]!;
    if (adjacent && (p.buffer !== first.buffer || p.byteOffset !== end)) adjacent = false;
    end = p.byteOffset + p.byteLength;
    total += p.byteLength;
  }
  if (adjacent) return new Uint8Array(first.buffer, first.byteOffset, total);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * Whether `b` has the same stack key as `a` (both stackable), compared field by field without
 * building the key: the common case of a frame whose requests all share one stack.
 */
export function sameStack(a: StackableRequest, b: StackableRequest): boolean {
  if (a.model !== b.model || a.version !== b.version || a.timeoutUs !== b.timeoutUs || a.deadlineUnixUs !== b.deadlineUnixUs) return false;
  const ao = a.outputs;
  const bo = b.outputs;
  if (ao.length !== bo.length) return false;
  for (let i = 0; i < ao.length; i++) if (ao[i] !== bo[i]) return false;
  const ai = a.inputs;
  const bi = b.inputs;
  if (ai.length !== bi.length) return false;
  for (let i = 0; i < ai.length; i++) {
    const x = ai[i]!;
    const y = bi[i]!;
    if (x.name !== y.name || x.datatype !== y.datatype) return false;
    const xs = x.shape;
    const ys = y.shape;
    if (xs.length !== ys.length || ys.length < 1 || ys[0] !== 1) return false;
    for (let d = 1; d < xs.length; d++) if (xs[d] !== ys[d]) return false;
  }
  return true;
}

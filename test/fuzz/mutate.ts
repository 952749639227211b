/**
 * Mutation operators for fuzzing, as fast-check arbitraries so failures shrink to a small list
 * of operations on one seed input.
 *
 *  - byte level (`byteMutations`, `applyByteOps`): byte sets, bit flips, little-endian 16/32-bit
 *    writes of boundary values, truncation, insertion, deletion, duplication and crossover with
 *    another seed input;
 *  - JSON value level (`jsonMutations`, `applyJsonOps`): replace, delete or retype a value at a
 *    path, add junk or prototype-polluting keys, wrap or unwrap arrays.
 * Positions are drawn as naturals and reduced modulo the current length, so every op applies
 * to any input. Inputs and generated values are never modified in place.
 */
import fc from 'fast-check';

/** Values at the edges of the integer types a decoder reads. */
export const BOUNDARY_U32: readonly number[] = [
  0, 1, 2, 3, 4, 7, 8, 12, 16, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x10000,
  0x7ffffffe, 0x7fffffff, 0x80000000, 0xfffffffc, 0xfffffffe, 0xffffffff,
];

export type ByteOp =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'u16'; at: number; value: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'duplicate'; at: number; to: number; count: number }
  | { kind: 'crossover'; at: number; other: number; from: number };

const u32Value = fc.oneof(fc.constantFrom(...BOUNDARY_U32), fc.nat({ max: 0xffffffff }), fc.nat({ max: 1024 }));

const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('u16' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 4, 0x7fff, 0x8000, 0xffff), fc.nat({ max: 0xffff })) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: u32Value }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), to: fc.nat(), count: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crossover' as const), at: fc.nat(), other: fc.nat(), from: fc.nat() }) },
);

/** One to `max` byte operations. */
export function byteMutations(max = 4): fc.Arbitrary<ByteOp[]> {
  return fc.array(byteOp, { minLength: 1, maxLength: max });
}

/**
 * Apply `ops` to a copy of `input`. Positions below `keep` are left alone (e.g. a frame's file
 * identifier) unless the input is shorter than that. `pool` supplies crossover partners.
 */
export function applyByteOps(input: Uint8Array, ops: readonly ByteOp[], pool: readonly Uint8Array[], keep = 0): Uint8Array {
  let b = input.slice();
  for (const op of ops) {
    const lo = b.length > keep ? keep : 0;
    const span = b.length - lo;
    const at = span > 0 ? lo + (op.at % span) : 0;
    switch (op.kind) {
      case 'set':
        if (span > 0) b[at] = op.value;
        break;
      case 'flip':
        if (span > 0) b[at] = b[at]! ^ (1 << op.bit);
        break;
      case 'u16':
        if (at + 2 <= b.length) new DataView(b.buffer).setUint16(at, op.value, true);
        break;
      case 'u32': {
        const p = at & ~3; // FlatBuffers offsets are 4-aligned: hit them more often
        if (p >= lo && p + 4 <= b.length) new DataView(b.buffer).setUint32(p, op.value >>> 0, true);
        break;
      }
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert': {
        const out = new Uint8Array(b.length + op.bytes.length);
        out.set(b.subarray(0, at));
        out.set(op.bytes, at);
        out.set(b.subarray(at), at + op.bytes.length);
        b = out;
        break;
      }
      case 'delete': {
        const end = Math.min(b.length, at + op.count);
        const out = new Uint8Array(b.length - (end - at));
        out.set(b.subarray(0, at));
        out.set(b.subarray(end), at);
        b = out;
        break;
      }
      case 'duplicate': {
        if (b.length === 0) break;
        const chunk = b.slice(at, Math.min(b.length, at + op.count));
        const to = op.to % (b.length + 1);
        const out = new Uint8Array(b.length + chunk.length);
        out.set(b.subarray(0, to));
        out.set(chunk, to);
        out.set(b.subarray(to), to + chunk.length);
        b = out;
        break;
      }
      case 'crossover': {
        if (pool.length === 0) break;
        const other = pool[op.other % pool.length]!;
        const from = other.length === 0 ? 0 : op.from % other.length;
        const out = new Uint8Array(at + other.length - from);
        out.set(b.subarray(0, at));
        out.set(other.subarray(from), at);
        b = out;
        break;
      }
    }
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// JSON value mutations

export type JsonOp =
  | { kind: 'replace'; path: number[]; value: unknown }
  | { kind: 'delete'; path: number[] }
  | { kind: 'addKey'; path: number[]; key: string; value: unknown }
  | { kind: 'wrap'; path: number[] }
  | { kind: 'unwrap'; path: number[] };

/** Keys a parser might trip over: prototype members, near-misses of real field names. */
export const HOSTILE_KEYS: readonly string[] = [
  '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'length', '',
  'inputs', 'outputs', 'data', 'shape', 'datatype', 'name', 'parameters', 'binary_data_size', 'input', 'input_batch',
];

/** Values of every JSON type with edge cases: big, negative, fractional, empty, deep, long. */
export const edgeValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null, true, false, 0, -0, -1, 1, 0.5, -1.5, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64,
    '', '0', '-1', 'FP32', 'BYTES', 'INT64', '18446744073709551615', '99999999999999999999', '\u0000', '\ud800', 'é',
    [], {}, [[]], [[[[[[[[[[1]]]]]]]]]], [1, [2, [3]]], { '': null }, { length: 1e9 },
  ),
  // Objects that String() and template literals cannot convert: JSON can give them these keys.
  fc.constantFrom<unknown>({ toString: 1 }, { valueOf: {}, toString: null }, [{ toString: 'x' }]),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.array(fc.oneof(fc.integer({ min: -3, max: 300 }), fc.double(), fc.constant(null)), { maxLength: 12 }),
  fc.jsonValue({ maxDepth: 3 }),
);

const path = fc.array(fc.nat(), { maxLength: 5 });

const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('replace' as const), path, value: edgeValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), path }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('addKey' as const), path, key: fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 })), value: edgeValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unwrap' as const), path }) },
);

export function jsonMutations(max = 3): fc.Arbitrary<JsonOp[]> {
  return fc.array(jsonOp, { minLength: 1, maxLength: max });
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === 'object' && v !== null;
}

function childKeys(v: Record<string, unknown> | unknown[]): (string | number)[] {
  return Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
}

/** Follow `path` (each step reduced modulo the container's size) as far as it goes. */
function locate(root: unknown, steps: readonly number[]): { parent?: Record<string, unknown> | unknown[]; key?: string | number; node: unknown } {
  let parent: Record<string, unknown> | unknown[] | undefined;
  let key: string | number | undefined;
  let node = root;
  for (const s of steps) {
    if (!isContainer(node)) break;
    const keys = childKeys(node);
    if (keys.length === 0) break;
    parent = node;
    key = keys[s % keys.length]!;
    node = (node as Record<string | number, unknown>)[key];
  }
  return { parent, key, node };
}

function set(parent: Record<string, unknown> | unknown[], key: string | number, value: unknown): void {
  // defineProperty: a '__proto__' key must become an own data property, as JSON.parse makes it.
  Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A private copy of a generated value: generators hand out shared instances (constants, shrinking). */
function fresh(v: unknown): unknown {
  return isContainer(v) ? structuredClone(v) : v;
}

/**
 * Apply `ops` to a deep copy of `root` and return the JSON text. Keys like `__proto__` are kept
 * as own properties, so they reach the text exactly as an attacker would send them.
 */
export function applyJsonOps(root: unknown, ops: readonly JsonOp[]): string {
  let doc: unknown = structuredClone(root);
  for (const op of ops) {
    const { parent, key, node } = locate(doc, op.path);
    switch (op.kind) {
      case 'replace':
        if (parent === undefined) doc = fresh(op.value);
        else set(parent, key!, fresh(op.value));
        break;
      case 'delete':
        if (parent === undefined) break;
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete (parent as Record<string, unknown>)[key as string];
        break;
      case 'addKey':
        if (isContainer(node) && !Array.isArray(node)) set(node, op.key, fresh(op.value));
        else if (parent !== undefined && !Array.isArray(parent)) set(parent, op.key, fresh(op.value));
        else if (isContainer(doc) && !Array.isArray(doc)) set(doc, op.key, fresh(op.value));
        break;
      case 'wrap':
        if (parent === undefined) doc = [doc];
        else set(parent, key!, [node]);
        break;
      case 'unwrap':
        if (Array.isArray(node) && node.length > 0) {
          if (parent === undefined) doc = node[0];
          else set(parent, key!, node[0]);
        }
        break;
    }
  }
  return JSON.stringify(doc) ?? 'null';
}

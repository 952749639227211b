/**
 * Fuzz campaigns for the Clipper REST body path (`parsePredictBody`, `parseUpdateBody` and
 * `numbersToBytes`, src/frontend/clipper.ts), for each app input type:
 *  - `clipperStructured`: bodies whose fields are valid or typed junk, plus junk keys; a valid
 *    body must parse to exactly the little-endian values sent;
 *  - `clipperMutated`: byte and JSON-level mutations of valid predict and update bodies.
 * Refusals must be BAD_REQUEST or INVALID_INPUT.
 */
import fc from 'fast-check';
import type { ErrorCode } from '../../src/errors.js';
import { parsePredictBody, parseUpdateBody } from '../../src/frontend/clipper.js';
import { INPUT_TYPES } from '../../src/selection/app.js';
import type { DataType } from '../../src/tensor/datatype.js';
import { Tally, fcOptions, type Accepted } from './harness.js';
import { applyByteOps, applyJsonOps, byteMutations, edgeValue, HOSTILE_KEYS, jsonMutations } from './mutate.js';
import { hasForbiddenKey } from './oip-campaigns.js';

const CLIPPER_CODES: readonly ErrorCode[] = ['BAD_REQUEST', 'INVALID_INPUT'];
/** The numeric input types (the oracle below builds their bytes); strings are checked in clipperStrings. */
const TYPES = Object.values(INPUT_TYPES).filter((t) => t !== 'BYTES');
const MAX_BATCH = 16;
const utf8 = new TextEncoder();

type Route = 'predict' | 'update';

function parse(route: Route, body: Uint8Array, dt: DataType): Uint8Array[] {
  return route === 'predict' ? parsePredictBody(body, dt, MAX_BATCH).inputs : [parseUpdateBody(body, dt).input];
}

function inspect(inputs: readonly Uint8Array[]): Accepted {
  return { outputBytes: inputs.reduce((a, b) => a + b.byteLength, 0) };
}

function parseOne(t: Tally, route: Route, body: Uint8Array, dt: DataType): Uint8Array[] | undefined {
  return t.check(body, () => parse(route, body, dt), inspect);
}

/** The bytes a valid value list must produce for `dt`. */
function expectedBytes(dt: DataType, values: readonly number[]): Uint8Array {
  const a = dt === 'FP32' ? Float32Array.from(values) : dt === 'FP64' ? Float64Array.from(values)
    : dt === 'INT32' ? Int32Array.from(values) : Uint8Array.from(values);
  return new Uint8Array(a.buffer);
}

/** Values valid for every input type (bytes 0..255 are ints, floats and doubles too). */
const validValues = fc.array(fc.nat({ max: 255 }), { maxLength: 24 });
const anyNumber = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(3.5e38, -3.5e38, 2 ** 31, -(2 ** 31) - 1, 256, -1, 0.5));

const junkInput = fc.oneof(
  { weight: 3, arbitrary: fc.array(anyNumber, { maxLength: 12 }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(anyNumber, edgeValue), { maxLength: 6 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: edgeValue },
);

const structuredBody = fc.oneof(
  fc.record({
    kind: fc.constant('valid' as const),
    values: validValues,
    nested: fc.boolean(),
    batch: fc.nat({ max: 3 }),
    uid: fc.option(fc.oneof(fc.string({ maxLength: 6 }), fc.nat()), { nil: undefined }),
    label: fc.double({ noNaN: true, noDefaultInfinity: true }),
    junk: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }).map((s) => `x_${s}`), edgeValue, { maxKeys: 2 }),
  }),
  fc.record({
    kind: fc.constant('junk' as const),
    doc: fc.record({
      input: junkInput,
      input_batch: fc.oneof(fc.array(junkInput, { maxLength: 20 }), edgeValue),
      uid: fc.oneof(fc.string({ maxLength: 6 }), edgeValue),
      user: edgeValue,
      label: fc.oneof(anyNumber, edgeValue),
    }, { requiredKeys: [] }),
    extra: fc.dictionary(fc.constantFrom(...HOSTILE_KEYS), edgeValue, { maxKeys: 2 }),
  }),
);

export function clipperStructured(runs: number, seed: number): Tally {
  const t = new Tally('clipper.structured', seed, CLIPPER_CODES);
  fc.assert(fc.property(structuredBody, fc.constantFrom(...TYPES), fc.constantFrom<Route>('predict', 'update'), (c, dt, route) => {
    if (c.kind === 'junk') {
      const doc: Record<string, unknown> = { ...c.doc };
      for (const [k, v] of Object.entries(c.extra)) Object.defineProperty(doc, k, { value: v, enumerable: true, writable: true, configurable: true });
      parseOne(t, route, utf8.encode(JSON.stringify(doc)), dt);
      return;
    }
    const input: unknown = c.nested ? [c.values.slice(0, 3), c.values.slice(3)] : c.values;
    const doc: Record<string, unknown> = { ...c.junk, label: c.label };
    if (c.uid !== undefined) doc.uid = c.uid;
    const batched = route === 'predict' && c.batch > 0;
    if (batched) doc.input_batch = Array.from({ length: c.batch }, () => input);
    else doc.input = input;
    const text = JSON.stringify(doc);
    const got = parseOne(t, route, utf8.encode(text), dt);
    const refused = hasForbiddenKey(JSON.parse(text));
    if (refused !== (got === undefined)) throw new Error(`a ${route} body was ${got ? 'accepted' : 'refused'}: ${text.slice(0, 200)}`);
    if (got === undefined) return;
    const want = Buffer.from(expectedBytes(dt, c.values));
    if (got.length !== (batched ? c.batch : 1) || got.some((g) => Buffer.compare(Buffer.from(g), want) !== 0)) {
      throw new Error(`a valid ${route} body for ${dt} parsed to different bytes`);
    }
  }), fcOptions(runs, seed));
  return t.finish();
}

const SEED_BODIES: readonly unknown[] = [
  { input: [0.5, 1, 2, 3] },
  { input: [[1, 2], [3, 4]], uid: 'user-1' },
  { input_batch: [[1, 2, 3], [4, 5, 6]], uid: 7 },
  { input: 'AAECAwQ=', uid: 'u' },
  { uid: 'u', input: [1, 2, 3, 4], label: 1 },
  { uid: 0, input: [255, 0, 17], label: -0.5, user: 'v' },
  { input_batch: [[0.25], [0.5], [1]] },
];

export function clipperMutated(runs: number, seed: number): Tally {
  const t = new Tally('clipper.mutated', seed, CLIPPER_CODES);
  const texts = SEED_BODIES.map((b) => utf8.encode(JSON.stringify(b)));
  const arb = fc.oneof(
    fc.record({ kind: fc.constant('bytes' as const), which: fc.nat({ max: texts.length - 1 }), ops: byteMutations(4) }),
    fc.record({ kind: fc.constant('json' as const), which: fc.nat({ max: texts.length - 1 }), ops: jsonMutations(3) }),
  );
  fc.assert(fc.property(arb, fc.constantFrom(...TYPES), fc.constantFrom<Route>('predict', 'update'), (c, dt, route) => {
    const body = c.kind === 'bytes' ? applyByteOps(texts[c.which]!, c.ops, texts) : utf8.encode(applyJsonOps(SEED_BODIES[c.which], c.ops));
    parseOne(t, route, body, dt);
  }), fcOptions(runs, seed));
  return t.finish();
}

/** The strings input type: a string parses to its UTF-8 bytes; anything else is refused with a code. */
export function clipperStrings(runs: number, seed: number): Tally {
  const t = new Tally('clipper.structured', seed, CLIPPER_CODES);
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 40 }), junkInput), (input) => {
    const got = parseOne(t, 'predict', utf8.encode(JSON.stringify({ input })), 'BYTES');
    if (typeof input === 'string') {
      if (!got || Buffer.compare(Buffer.from(got[0]!), Buffer.from(input, 'utf8')) !== 0) throw new Error(`the string ${JSON.stringify(input)} did not parse to its UTF-8 bytes`);
    } else if (got !== undefined) throw new Error(`a non-string input was accepted for strings: ${JSON.stringify(input).slice(0, 100)}`);
  }), { numRuns: runs, seed });
  return t;
}

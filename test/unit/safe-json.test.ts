import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SkiffError, type ErrorCode } from '../../src/errors.js';
import {
  expectArray, expectBoolean, expectInteger, expectObject, expectString, optional, parseJsonBody,
} from '../../src/protocol/safe-json.js';

function codeOf(fn: () => unknown): ErrorCode | 'none' {
  try {
    fn();
    return 'none';
  } catch (err) {
    assert.ok(err instanceof SkiffError, `expected a SkiffError, got ${String(err)}`);
    return err.code;
  }
}

test('parses JSON from a string and from UTF-8 bytes', () => {
  const doc = { a: [1, 2.5, -3e-7], b: { c: 'héllo ✓ 🐟', d: null, e: true } };
  assert.deepEqual(parseJsonBody(JSON.stringify(doc)), doc);
  assert.deepEqual(parseJsonBody(new TextEncoder().encode(JSON.stringify(doc))), doc);
  assert.equal(parseJsonBody('42'), 42);
  assert.equal(parseJsonBody('"x"'), 'x');
});

test('invalid JSON and invalid UTF-8 are BAD_REQUEST', () => {
  for (const text of ['', '{', '{"a":}', '[1,2,]', 'NaN', "{'a':1}", '{"a":1} x']) {
    assert.equal(codeOf(() => parseJsonBody(text)), 'BAD_REQUEST', text);
  }
  const bytes = new Uint8Array([0x22, 0xff, 0xfe, 0x22]); // "\xff\xfe"
  assert.equal(codeOf(() => parseJsonBody(bytes)), 'BAD_REQUEST');
});

test('prototype-pollution keys are refused anywhere, in any spelling JSON allows', () => {
  const bodies = [
    '{"__proto__":{"polluted":1}}',
    '{"a":{"b":[1,{"constructor":{"prototype":{"polluted":1}}}]}}',
    '[{"x":1},{"prototype":2}]',
    '{"\\u005f_proto__":{"polluted":1}}',
    '{"construct\\u006fr":1}',
  ];
  for (const b of bodies) assert.equal(codeOf(() => parseJsonBody(b)), 'BAD_REQUEST', b);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('the forbidden words are fine as values and as parts of longer keys', () => {
  const v = parseJsonBody('{"name":"__proto__","data":["constructor","prototype"],"my_prototype":1}');
  assert.deepEqual(v, { name: '__proto__', data: ['constructor', 'prototype'], my_prototype: 1 });
});

test('nesting depth is bounded, counting the outermost container as 1', () => {
  const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
  assert.doesNotThrow(() => parseJsonBody(nest(64)));
  assert.equal(codeOf(() => parseJsonBody(nest(65))), 'BAD_REQUEST');
  assert.doesNotThrow(() => parseJsonBody(nest(3), 3));
  assert.equal(codeOf(() => parseJsonBody(nest(4), 3)), 'BAD_REQUEST');
  assert.equal(codeOf(() => parseJsonBody('{"a":{"b":{"c":1}}}', 2)), 'BAD_REQUEST');
  assert.doesNotThrow(() => parseJsonBody('{"a":{"b":1}}', 2));
  // Very deep input is refused cleanly, not with a stack overflow.
  const t0 = performance.now();
  assert.equal(codeOf(() => parseJsonBody(nest(200_000))), 'BAD_REQUEST');
  assert.ok(performance.now() - t0 < 2000);
});

test('typed accessors accept their type and refuse others with BAD_REQUEST', () => {
  assert.deepEqual(expectObject({ a: 1 }, 'x'), { a: 1 });
  for (const v of [null, [], 'a', 1, undefined]) assert.equal(codeOf(() => expectObject(v, 'x')), 'BAD_REQUEST');
  assert.deepEqual(expectArray([1], 'x'), [1]);
  for (const v of [null, {}, 'a']) assert.equal(codeOf(() => expectArray(v, 'x')), 'BAD_REQUEST');
  assert.equal(expectString('s', 'x'), 's');
  assert.equal(codeOf(() => expectString(1, 'x')), 'BAD_REQUEST');
  assert.equal(expectBoolean(false, 'x'), false);
  assert.equal(codeOf(() => expectBoolean(0, 'x')), 'BAD_REQUEST');
  assert.equal(expectInteger(-5, 'x'), -5);
  assert.equal(expectInteger(7, 'x', 0, 7), 7);
  for (const v of [1.5, '1', 2 ** 53, NaN, 8, -1]) assert.equal(codeOf(() => expectInteger(v, 'x', 0, 7)), 'BAD_REQUEST', String(v));
  assert.equal(optional(undefined, expectString, 'x'), undefined);
  assert.equal(optional('a', expectString, 'x'), 'a');
  assert.equal(codeOf(() => optional(null, expectString, 'x')), 'BAD_REQUEST');
});

test('error messages name the field', () => {
  assert.throws(() => expectString(3, 'inputs[2].name'), (e: unknown) => e instanceof SkiffError && e.message.includes('inputs[2].name'));
});

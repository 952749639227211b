/**
 * Clipper's container RPC (version 3), byte for byte in both directions. The expected frames are
 * written out by hand from the protocol (little-endian integers), not produced by the codec.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeContainerMessage, encodeHeartbeat, encodePredict, inputTypeFromCode, parseInputType, HEARTBEAT_KEEPALIVE, HEARTBEAT_REQUEST_METADATA,
} from '../../src/engine/container/rpc-codec.js';

const hex = (frames: readonly Uint8Array[]): string[] => frames.map((f) => Buffer.from(f).toString('hex'));
const b = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const EMPTY = Buffer.alloc(0);

describe('container RPC codec: server -> container', () => {
  it('heartbeat replies: version 3, type 2, keep-alive 0 or request-metadata 1', () => {
    assert.deepEqual(hex(encodeHeartbeat(HEARTBEAT_KEEPALIVE)), ['', '03000000', '02000000', '00000000']);
    assert.deepEqual(hex(encodeHeartbeat(HEARTBEAT_REQUEST_METADATA)), ['', '03000000', '02000000', '01000000']);
  });

  it('a predict request: version, type 1, msg_id, request type 0, u64 header size, header, input frames', () => {
    const in1 = new Uint8Array(new Float64Array([1.5, -2]).buffer);
    const in2 = new Uint8Array(new Float64Array([0.25]).buffer);
    const frames = encodePredict(0x01020304, 'doubles', [in1, in2]);
    assert.deepEqual(hex(frames), [
      '',
      '03000000',
      '01000000',
      '04030201',
      '00000000',
      '2000000000000000', // 32 header bytes
      '0300000000000000' + '0200000000000000' + '1000000000000000' + '0800000000000000', // doubles, 2 inputs, 16 and 8 bytes
      '000000000000f83f' + '00000000000000c0',
      '000000000000d03f',
    ]);
    // Inputs are the caller's views, not copies.
    assert.equal(frames[7], in1);
  });

  it('input type codes follow Clipper: bytes 0, ints 1, floats 2, doubles 3, strings 4', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(inputTypeFromCode), ['bytes', 'ints', 'floats', 'doubles', 'strings', undefined]);
    assert.deepEqual(hex(encodePredict(1, 'strings', [text('hi')])).slice(6, 8), ['040000000000000001000000000000000200000000000000', '6869']);
    assert.equal(parseInputType('Integers'), 'ints');
    assert.equal(parseInputType('d'), 'doubles');
    assert.equal(parseInputType('tensor'), undefined);
  });
});

describe('container RPC codec: container -> server', () => {
  it('a heartbeat', () => {
    assert.deepEqual(decodeContainerMessage([EMPTY, b('02000000')]), { kind: 'heartbeat' });
  });

  it('NewContainer: name, version string, input type as an ASCII digit, RPC version last', () => {
    assert.deepEqual(decodeContainerMessage([EMPTY, b('00000000'), text('digits'), text('7'), text('3'), b('03000000')]),
      { kind: 'new_container', model: 'digits', version: '7', inputType: 'doubles' });
  });

  it('ContainerContent: msg_id echoed, u64 header length, header, one frame per output', () => {
    const m = decodeContainerMessage([
      EMPTY, b('01000000'), b('2a000000'), b('1800000000000000'), b('0200000000000000 0100000000000000 0300000000000000'), text('7'), text('cat'),
    ]);
    assert.equal(m.kind, 'content');
    if (m.kind !== 'content') return;
    assert.equal(m.msgId, 42);
    assert.deepEqual(m.outputs.map((o) => Buffer.from(o).toString()), ['7', 'cat']);
  });

  const garbage: [string, Buffer[], string][] = [
    ['no delimiter', [b('02000000')], 'no_delimiter'],
    ['a heartbeat with extra frames', [EMPTY, b('02000000'), b('00')], 'bad_message_type'],
    ['an unknown type', [EMPTY, b('09000000')], 'bad_message_type'],
    ['a type frame of the wrong size', [EMPTY, b('0200')], 'bad_message_type'],
    ['NewContainer of RPC version 2', [EMPTY, b('00000000'), text('m'), text('1'), text('3'), b('02000000')], 'wrong_rpc_version'],
    ['NewContainer without its version frame', [EMPTY, b('00000000'), text('m'), text('1'), text('3')], 'wrong_rpc_version'],
    ['NewContainer with input type 7', [EMPTY, b('00000000'), text('m'), text('1'), text('7'), b('03000000')], 'bad_input_type'],
    ['NewContainer with a name that is not UTF-8', [EMPTY, b('00000000'), b('ff'), text('1'), text('3'), b('03000000')], 'bad_new_container'],
    ['content without a header', [EMPTY, b('01000000'), b('01000000')], 'truncated_header'],
    ['content with a 3-byte msg_id', [EMPTY, b('01000000'), b('010000'), b('0800000000000000'), b('0000000000000000')], 'truncated_header'],
    ['a header length claiming a terabyte', [EMPTY, b('01000000'), b('01000000'), b('0000000000010000'), b('0100000000000000')], 'header_mismatch'],
    ['more outputs announced than sent', [EMPTY, b('01000000'), b('01000000'), b('1000000000000000'), b('0200000000000000 0100000000000000'), text('x')], 'header_mismatch'],
    ['an output size that lies', [EMPTY, b('01000000'), b('01000000'), b('1000000000000000'), b('0100000000000000 ffffffff00000000'), text('x')], 'header_mismatch'],
  ];
  for (const [what, frames, reason] of garbage) {
    it(`garbage: ${what} -> ${reason}`, () => {
      const m = decodeContainerMessage(frames);
      assert.equal(m.kind, 'garbage');
      if (m.kind === 'garbage') assert.equal(m.reason, reason);
    });
  }

  it('never throws on random frames', () => {
    let seed = 1;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < 5000; i++) {
      const frames = Array.from({ length: rnd(8) }, () => Buffer.from(Array.from({ length: rnd(12) }, () => rnd(256))));
      if (frames.length > 0 && rnd(2)) frames[0] = EMPTY;
      assert.doesNotThrow(() => decodeContainerMessage(frames));
    }
  });
});

/**
 * Clipper's container RPC, version 3, as pure functions over ZeroMQ frames (no sockets here).
 * All integers are little-endian. Every message starts with an empty delimiter frame; the
 * ROUTER's routing-id frame is not part of what these functions see or return.
 *
 * Container -> server:
 *   Heartbeat         '' | u32 2
 *   NewContainer      '' | u32 0 | name (UTF-8) | version (UTF-8) | input type (ASCII decimal) | u32 RPC_VERSION
 *   ContainerContent  '' | u32 1 | msg_id (4 bytes, echoed) | u64 header bytes | header | output_1 .. output_n
 *                     header = u64 n, then u64 length per output
 * Server -> container:
 *   Heartbeat         '' | u32 RPC_VERSION | u32 2 | u32 heartbeat type (0 keep-alive, 1 send your metadata)
 *   Predict           '' | u32 RPC_VERSION | u32 1 | u32 msg_id | u32 0 (predict) | u64 header bytes | header | input_1 .. input_n
 *                     header = u64 input type, u64 n, then u64 size per input
 *
 * Decoding is total: a malformed message becomes a `garbage` result with a reason, never an
 * exception, and no allocation is ever sized by a number the peer claims.
 */
export const RPC_VERSION = 3;

export const MSG_NEW_CONTAINER = 0;
export const MSG_CONTAINER_CONTENT = 1;
export const MSG_HEARTBEAT = 2;
export const HEARTBEAT_KEEPALIVE = 0;
export const HEARTBEAT_REQUEST_METADATA = 1;
const REQUEST_PREDICT = 0;

export type InputType = 'bytes' | 'ints' | 'floats' | 'doubles' | 'strings';

/** Clipper's input type codes. */
export const INPUT_TYPE_CODE: Readonly<Record<InputType, number>> = Object.freeze({ bytes: 0, ints: 1, floats: 2, doubles: 3, strings: 4 });
const INPUT_TYPES: readonly InputType[] = ['bytes', 'ints', 'floats', 'doubles', 'strings'];

export function inputTypeFromCode(code: number): InputType | undefined {
  return INPUT_TYPES[code];
}

/** Clipper's names for input types (and the aliases its containers accept), e.g. "doubles", "d", "integers". */
export function parseInputType(name: string): InputType | undefined {
  const n = name.trim().toLowerCase();
  if (['b', 'bytes', 'byte'].includes(n)) return 'bytes';
  if (['i', 'ints', 'int', 'integer', 'integers'].includes(n)) return 'ints';
  if (['f', 'floats', 'float'].includes(n)) return 'floats';
  if (['d', 'doubles', 'double'].includes(n)) return 'doubles';
  if (['s', 'strings', 'string', 'strs', 'str'].includes(n)) return 'strings';
  return undefined;
}

/** Bytes per element of a numeric input type (1 for bytes and strings). */
export const INPUT_ELEMENT_BYTES: Readonly<Record<InputType, number>> = Object.freeze({ bytes: 1, ints: 4, floats: 4, doubles: 8, strings: 1 });

const EMPTY = new Uint8Array(0);

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

const VERSION_FRAME = u32(RPC_VERSION);
const HEARTBEAT_FRAMES: readonly (readonly Uint8Array[])[] = [HEARTBEAT_KEEPALIVE, HEARTBEAT_REQUEST_METADATA].map(
  (t) => Object.freeze([EMPTY, VERSION_FRAME, u32(MSG_HEARTBEAT), u32(t)]),
);
const CONTENT_TYPE_FRAME = u32(MSG_CONTAINER_CONTENT);
const PREDICT_FRAME = u32(REQUEST_PREDICT);

/** A heartbeat reply (the frames are shared constants: do not modify). */
export function encodeHeartbeat(type: typeof HEARTBEAT_KEEPALIVE | typeof HEARTBEAT_REQUEST_METADATA): readonly Uint8Array[] {
  return HEARTBEAT_FRAMES[type]!;
}

/**
 * A predict request for one batch: the input frames are the caller's views (not copied). Clipper's
 * containers crash on an empty batch: callers never send one.
 */
export function encodePredict(msgId: number, inputType: InputType, inputs: readonly Uint8Array[]): Uint8Array[] {
  const n = inputs.length;
  // One buffer for the msg_id, the header length and the header (u64s as two u32s: sizes stay below 2^32).
  const buf = new ArrayBuffer(4 + 8 + 8 * (2 + n));
  const v = new DataView(buf);
  v.setUint32(0, msgId >>> 0, true);
  v.setUint32(4, 8 * (2 + n), true);
  v.setUint32(12, INPUT_TYPE_CODE[inputType], true);
  v.setUint32(20, n, true);
  for (let i = 0; i < n; i++) v.setUint32(28 + 8 * i, inputs[i]!.byteLength, true);
  const frames: Uint8Array[] = [EMPTY, VERSION_FRAME, CONTENT_TYPE_FRAME, new Uint8Array(buf, 0, 4), PREDICT_FRAME, new Uint8Array(buf, 4, 8), new Uint8Array(buf, 12)];
  for (const x of inputs) frames.push(x);
  return frames;
}

/** Why a container's message was refused. Stable names: they label counters. */
export type GarbageReason =
  | 'no_delimiter'
  | 'bad_message_type'
  | 'wrong_rpc_version'
  | 'bad_new_container'
  | 'bad_input_type'
  | 'truncated_header'
  | 'header_mismatch';

export type ContainerMessage =
  | { kind: 'heartbeat' }
  | { kind: 'new_container'; model: string; version: string; inputType: InputType }
  | { kind: 'content'; msgId: number; outputs: Uint8Array[] }
  | { kind: 'garbage'; reason: GarbageReason; detail: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

function garbage(reason: GarbageReason, detail: string): ContainerMessage {
  return { kind: 'garbage', reason, detail };
}

function readU32(f: Uint8Array | undefined): number | undefined {
  if (!f || f.byteLength !== 4) return undefined;
  return new DataView(f.buffer, f.byteOffset, 4).getUint32(0, true);
}

/** Decode one message from a container: `frames` are what follows the routing id. */
export function decodeContainerMessage(frames: readonly Uint8Array[]): ContainerMessage {
  if (frames.length < 2 || frames[0]!.byteLength !== 0) return garbage('no_delimiter', 'a message must start with an empty delimiter frame and a type');
  const type = readU32(frames[1]);
  if (type === MSG_HEARTBEAT) return frames.length === 2 ? { kind: 'heartbeat' } : garbage('bad_message_type', 'a heartbeat has no further frames');
  if (type === MSG_NEW_CONTAINER) return decodeNewContainer(frames);
  if (type === MSG_CONTAINER_CONTENT) return decodeContent(frames);
  return garbage('bad_message_type', `unknown message type ${type === undefined ? '(not a u32 frame)' : type}`);
}

function decodeNewContainer(frames: readonly Uint8Array[]): ContainerMessage {
  // '' | 0 | name | version | input type | u32 RPC version
  if (frames.length !== 6) return garbage(frames.length < 6 ? 'wrong_rpc_version' : 'bad_new_container', `NewContainer with ${frames.length - 2} fields, expected 4`);
  const rpcVersion = readU32(frames[5]);
  if (rpcVersion !== RPC_VERSION) return garbage('wrong_rpc_version', `RPC version ${rpcVersion ?? '(not a u32 frame)'}, expected ${RPC_VERSION}`);
  let model: string;
  let version: string;
  let typeText: string;
  try {
    model = utf8.decode(frames[2]);
    version = utf8.decode(frames[3]);
    typeText = utf8.decode(frames[4]);
  } catch {
    return garbage('bad_new_container', 'name, version or input type is not UTF-8');
  }
  if (model.length === 0 || model.length > 256 || version.length === 0 || version.length > 64) return garbage('bad_new_container', 'model name or version is empty or too long');
  const code = /^[0-9]$/.test(typeText) ? Number(typeText) : NaN;
  const inputType = inputTypeFromCode(code);
  if (!inputType) return garbage('bad_input_type', 'input type must be a decimal code 0..4');
  return { kind: 'new_container', model, version, inputType };
}

function decodeContent(frames: readonly Uint8Array[]): ContainerMessage {
  // '' | 1 | msg_id | u64 header bytes | header | outputs...
  if (frames.length < 5) return garbage('truncated_header', 'ContainerContent without msg_id, header length and header');
  const msgId = readU32(frames[2]);
  if (msgId === undefined) return garbage('truncated_header', 'msg_id must be 4 bytes');
  const lenFrame = frames[3]!;
  if (lenFrame.byteLength !== 8) return garbage('truncated_header', 'header length must be 8 bytes');
  const claimed = new DataView(lenFrame.buffer, lenFrame.byteOffset, 8).getBigUint64(0, true);
  const header = frames[4]!;
  // Sizes are checked against the frames that actually arrived, never used to allocate.
  if (claimed !== BigInt(header.byteLength) || header.byteLength < 8 || header.byteLength % 8 !== 0) {
    return garbage('header_mismatch', `header length ${claimed} does not match the ${header.byteLength}-byte header frame`);
  }
  const hv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const n = hv.getBigUint64(0, true);
  const outputs = frames.length - 5;
  if (n !== BigInt(outputs) || header.byteLength !== 8 * (outputs + 1)) {
    return garbage('header_mismatch', `header announces ${n} outputs; ${outputs} output frames arrived`);
  }
  const out: Uint8Array[] = new Array(outputs);
  for (let i = 0; i < outputs; i++) {
    const f = frames[5 + i]!;
    if (hv.getBigUint64(8 + 8 * i, true) !== BigInt(f.byteLength)) return garbage('header_mismatch', `output ${i} is ${f.byteLength} bytes; the header says otherwise`);
    out[i] = f;
  }
  return { kind: 'content', msgId, outputs: out };
}

/**
 * Pre-encoded requests. Encoding a FlatBuffers frame or an OIP JSON body for every query would
 * make the generator, not the server, the bottleneck; instead each run encodes a set of
 * templates once, and every send copies a template and patches the few bytes that change: the
 * request ids (WebSocket) and, for unique queries, a marker over the first two input values.
 * The patch positions are found by encoding each template twice with different sentinels and
 * locating the sentinel bytes, so no knowledge of the FlatBuffers layout is assumed.
 */
import { encodeFrame } from '../../src/protocol/wire-encode.js';
import type { RequestInit } from '../../src/protocol/wire-types.js';
import { encodeInferRequest } from '../../src/protocol/oip-encode.js';
import { MARKER_DIGITS, MARKER_MIN, type Rows } from './payload.js';
import type { InputSpec } from './spec.js';

/** A frame of k requests: `idAt[j]` and `dataAt[j]` are byte offsets of request j's id and first input value. */
export interface FrameTemplate {
  bytes: Uint8Array;
  idAt: number[];
  dataAt: number[];
}

function rowBytes(rows: Rows, r: number): Uint8Array {
  const f = rows.data.slice(r * rows.elems, (r + 1) * rows.elems);
  return new Uint8Array(f.buffer);
}

function f32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return b;
}

/**
 * Offsets of request j's sentinel in two encodings of the same frame that differ only in the
 * sentinels: every byte where `a` and `b` differ lies in one; `decode` maps the 4-byte-aligned
 * word there (in `a`) to the request index and the sentinel's start, or null. One linear pass.
 */
function locateAll(a: Uint8Array, b: Uint8Array, k: number, decode: (dv: DataView, word: number) => { j: number; at: number } | null): number[] {
  const at = new Array<number>(k).fill(-1);
  const dv = new DataView(a.buffer, a.byteOffset, a.byteLength);
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const hit = decode(dv, i & ~3);
    if (hit && hit.j >= 0 && hit.j < k) at[hit.j] = hit.at;
  }
  if (at.some((x) => x < 0)) throw new Error('bench: could not locate a sentinel in an encoded frame');
  return at;
}

const ID_A = 0x5eed_0001_0000_0000n;
const ID_B = 0x5eed_0002_0000_0000n;
const DATA_A = 1_234_567;
const DATA_B = 2_345_678;

/**
 * Up to `maxFrames` templates of `k` requests each, cycling through the rows (frame f holds
 * rows f*k .. f*k+k-1, modulo the row count).
 */
export function frameTemplates(o: { model: string; timeoutUs: number; input: InputSpec; rows: Rows; k: number; maxFrames: number }): FrameTemplate[] {
  const frames = Math.max(1, Math.min(o.maxFrames, Math.ceil(o.rows.count / o.k)));
  const out: FrameTemplate[] = [];
  for (let f = 0; f < frames; f++) {
    const datas: Uint8Array[] = [];
    for (let j = 0; j < o.k; j++) datas.push(rowBytes(o.rows, (f * o.k + j) % o.rows.count));
    const build = (idBase: bigint, mark?: number): Uint8Array => {
      const requests: RequestInit[] = datas.map((d, j) => {
        let data = d;
        if (mark !== undefined) {
          data = d.slice();
          data.set(f32(mark + j), 0);
        }
        const r: RequestInit = {
          id: idBase + BigInt(j),
          model: o.model,
          inputs: [{ name: o.input.name, datatype: 'FP32', shape: [1, ...o.input.rowShape], data }],
        };
        if (o.timeoutUs > 0) r.timeoutUs = o.timeoutUs;
        return r;
      });
      return encodeFrame({ requests });
    };
    const a = build(ID_A);
    const b = build(ID_B);
    const ma = build(ID_A, DATA_A);
    const mb = build(ID_A, DATA_B);
    if (a.length !== b.length || a.length !== ma.length || a.length !== mb.length) throw new Error('bench: frame layout depends on the sentinels');
    // The ids differ in their high word (0x5eed0001 vs 0x5eed0002): its low half is request j.
    const idAt = locateAll(a, b, o.k, (dv, w) => {
      if (w < 4 || dv.getUint32(w, true) !== Number(ID_A >> 32n)) return null;
      return { j: dv.getUint32(w - 4, true), at: w - 4 };
    });
    // The first input value is DATA_A + j (exact in FP32).
    const dataAt = locateAll(ma, mb, o.k, (dv, w) => {
      const v = dv.getFloat32(w, true);
      return Number.isInteger(v) ? { j: v - DATA_A, at: w } : null;
    });
    out.push({ bytes: a, idAt, dataAt });
  }
  return out;
}

/**
 * Copy of `t` with request j carrying id `firstId + j`; `marks[j]`, when set, overwrites that
 * request's first two input values. The copy is owned by the caller (safe to hand to a socket).
 */
export function stampFrame(t: FrameTemplate, firstId: number, marks: ([number, number] | undefined)[] | null): Buffer {
  const out = Buffer.allocUnsafe(t.bytes.length);
  out.set(t.bytes);
  for (let j = 0; j < t.idAt.length; j++) {
    const id = firstId + j;
    out.writeUInt32LE(id % 0x1_0000_0000, t.idAt[j]!);
    out.writeUInt32LE(Math.floor(id / 0x1_0000_0000), t.idAt[j]! + 4);
    const m = marks?.[j];
    if (m) {
      out.writeFloatLE(m[0], t.dataAt[j]!);
      out.writeFloatLE(m[1], t.dataAt[j]! + 4);
    }
  }
  return out;
}

/** An HTTP/1.1 request (head + OIP JSON body); `markAt` >= 0 when it carries a marker to patch. */
export interface HttpTemplate {
  bytes: Buffer;
  markAt: number;
}

/** One plain and (with `marked`) one marker-ready request per row. */
export function httpTemplates(o: { host: string; model: string; timeoutUs: number; input: InputSpec; rows: Rows; marked: boolean }): { plain: HttpTemplate[]; marked: HttpTemplate[] } {
  const path = `/v2/models/${encodeURIComponent(o.model)}/infer`;
  const request = (data: Uint8Array, markAt: boolean): HttpTemplate => {
    const enc = encodeInferRequest({
      inputs: [{ name: o.input.name, datatype: 'FP32', shape: [1, ...o.input.rowShape], data }],
      ...(o.timeoutUs > 0 ? { timeoutUs: o.timeoutUs } : {}),
    });
    const head = `POST ${path} HTTP/1.1\r\nHost: ${o.host}\r\nContent-Type: application/json\r\nContent-Length: ${enc.body.length}\r\n\r\n`;
    const bytes = Buffer.concat([Buffer.from(head, 'latin1'), enc.body]);
    if (!markAt) return { bytes, markAt: -1 };
    const needle = `"data":[${MARKER_MIN},${MARKER_MIN},`;
    const at = bytes.indexOf(needle, head.length, 'latin1');
    if (at < 0) throw new Error('bench: marker not found in the JSON body');
    return { bytes, markAt: at + '"data":['.length };
  };
  const plain: HttpTemplate[] = [];
  const marked: HttpTemplate[] = [];
  for (let r = 0; r < o.rows.count; r++) {
    const d = rowBytes(o.rows, r);
    plain.push(request(d, false));
    if (o.marked) {
      const m = d.slice();
      const dv = new DataView(m.buffer);
      dv.setFloat32(0, MARKER_MIN, true);
      dv.setFloat32(4, MARKER_MIN, true);
      marked.push(request(m, true));
    }
  }
  return { plain, marked };
}

/** Copy of a marker-ready request with the marker's two values written in (7 digits each). */
export function stampHttp(t: HttpTemplate, mark: [number, number]): Buffer {
  const out = Buffer.allocUnsafe(t.bytes.length);
  t.bytes.copy(out);
  out.write(String(mark[0]), t.markAt, MARKER_DIGITS, 'latin1');
  out.write(String(mark[1]), t.markAt + MARKER_DIGITS + 1, MARKER_DIGITS, 'latin1');
  return out;
}

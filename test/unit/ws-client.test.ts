import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket, us_listen_socket } from 'uWebSockets.js';
import uWS from '../../src/http/uws.js';
import { SkiffClient, type InferRequest } from '../../src/client/ws-client.js';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import { ResponseEncoder, encodeFrame } from '../../src/protocol/wire-encode.js';
import type { WireFeedback, WireRequest, WireResponse } from '../../src/protocol/wire-types.js';
import { toErrorInfo, type ErrorInfo } from '../../src/errors.js';
import type { Tensor } from '../../src/tensor/tensor.js';

// ---------------------------------------------------------------------------------------------
// A small real uWS server. It answers every request with a computed response (y = 2x for model
// 'double'), deliberately out of order: responses are computed after the message callback has
// returned (so the neutered message buffer must not be needed any more), reversed, and sent in
// several frames on later ticks.

interface Conn { closed: boolean; held: Map<bigint, WireRequest> }

const stats = {
  frames: 0,
  requestsPerFrame: [] as number[],
  sentOrder: [] as bigint[],
  cancels: [] as bigint[],
  feedback: [] as WireFeedback[],
};
let listenToken: us_listen_socket | undefined;
let url = '';
const conns = new Set<WebSocket<Conn>>();
const encoder = new ResponseEncoder();

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
function floats(t: Tensor): number[] {
  return Array.from(new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4));
}

function answer(req: WireRequest): WireResponse | undefined {
  if (req.error) return { id: req.id, model: req.model, version: 0, outputs: [], error: req.error };
  switch (req.model) {
    case 'double': {
      const x = req.inputs[0]!;
      const y = floats(x).map((v) => 2 * v);
      return { id: req.id, model: 'double', version: 1, outputs: [{ name: 'y', datatype: 'FP32', shape: x.shape, data: f32(y) }] };
    }
    case 'stray':
      return { id: req.id, model: 'stray', version: 0, outputs: [] };
    case 'fail':
      return { id: req.id, model: 'fail', version: 0, outputs: [], error: { code: 'MODEL_NOT_FOUND', message: 'no model fail' } };
    default:
      return undefined;
  }
}

function send(ws: WebSocket<Conn>, bytes: Uint8Array): void {
  if (!ws.getUserData().closed) ws.send(bytes, true, false);
}

function sendReordered(ws: WebSocket<Conn>, responses: WireResponse[]): void {
  responses.reverse();
  let delay = 0;
  for (let i = 0; i < responses.length; i += 3) {
    const chunk = responses.slice(i, i + 3);
    setTimeout(() => {
      for (const r of chunk) stats.sentOrder.push(r.id);
      send(ws, encoder.encode(chunk)); // encoder bytes are sent before the next encode
    }, delay++);
  }
}

function onMessage(ws: WebSocket<Conn>, message: ArrayBuffer): void {
  stats.frames++;
  let frame;
  try {
    frame = decodeFrame(new Uint8Array(message));
  } catch (e) {
    send(ws, encodeFrame({ error: toErrorInfo(e, 'BAD_FRAME') }));
    return;
  }
  stats.requestsPerFrame.push(frame.requests.length);
  stats.feedback.push(...frame.feedback);
  const conn = ws.getUserData();
  setImmediate(() => {
    // `message` is neutered by now; only the decoded copies are used.
    const out: WireResponse[] = [];
    for (const req of frame.requests) {
      if (req.model === 'close') {
        ws.end(1011, 'asked to close');
        return;
      }
      const r = answer(req);
      if (r) out.push(r);
      else if (req.model === 'hold') conn.held.set(req.id, req);
      // An answer for an id the client never used; after the reversal it is sent first.
      if (req.model === 'stray') out.push({ id: req.id + 1_000_000n, model: 'stray', version: 0, outputs: [] });
    }
    for (const id of frame.cancel) {
      stats.cancels.push(id);
      const held = conn.held.get(id);
      if (held) {
        conn.held.delete(id);
        out.push({ id, model: held.model, version: 0, outputs: [], error: { code: 'DEADLINE_EXCEEDED', message: 'cancelled' } });
      }
    }
    sendReordered(ws, out);
  });
}

before(async () => {
  assert.ok(/\[native code\]/.test(String(uWS.App)), 'uWebSockets.js must load its native binary');
  const app = uWS.App().ws<Conn>('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    upgrade: (res, req, context) => {
      res.upgrade<Conn>({ closed: false, held: new Map() }, req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      conns.add(ws);
    },
    message: (ws, message, isBinary) => {
      if (isBinary) onMessage(ws, message);
      else ws.end(1003, 'binary frames only');
    },
    close: (ws) => {
      ws.getUserData().closed = true;
      conns.delete(ws);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (token) => {
      if (!token) return reject(new Error('listen failed'));
      listenToken = token;
      resolve(uWS.us_socket_local_port(token));
    });
  });
  url = `ws://127.0.0.1:${port}/`;
});

after(() => {
  for (const ws of conns) ws.close();
  if (listenToken) uWS.us_listen_socket_close(listenToken);
});

function doubleReq(seed: number, model = 'double'): InferRequest {
  return { model, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: f32([seed, seed + 0.5, -seed]) }] };
}

function assertDoubled(res: WireResponse, seed: number): void {
  assert.equal(res.error, undefined, res.error?.message);
  assert.equal(res.model, 'double');
  assert.deepEqual(res.outputs[0]!.shape, [1, 3]);
  assert.deepEqual(floats(res.outputs[0]!), [2 * seed, 2 * seed + 1, -2 * seed]);
}

// ---------------------------------------------------------------------------------------------

/** Fail fast rather than hang if an answer never comes. */
const T = { timeout: 10_000 };

test('infer gets its computed answer', T, async () => {
  const client = await SkiffClient.connect(url);
  try {
    const call = client.infer(doubleReq(3));
    assert.equal(typeof call.id, 'bigint');
    const res = await call;
    assert.equal(res.id, call.id);
    assertDoubled(res, 3);
    assert.equal(client.inFlight, 0);
  } finally {
    await client.close();
  }
});

test('calls in one tick are coalesced into one frame; reordered answers are matched by id', T, async () => {
  const client = await SkiffClient.connect(url);
  try {
    const framesBefore = stats.frames;
    const orderBefore = stats.sentOrder.length;
    const calls = Array.from({ length: 50 }, (_, i) => client.infer(doubleReq(i + 1)));
    const ids = calls.map((c) => c.id);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, 'ids increase');
    const results = await Promise.all(calls);
    assert.equal(stats.frames - framesBefore, 1, 'one frame for 50 calls in one tick');
    assert.equal(stats.requestsPerFrame.at(-1), 50);
    results.forEach((r, i) => {
      assert.equal(r.id, ids[i]);
      assertDoubled(r, i + 1);
    });
    const sent = stats.sentOrder.slice(orderBefore);
    assert.deepEqual(sent, [...ids].reverse(), 'the server really answered in reverse order');
  } finally {
    await client.close();
  }
});

test('coalesce:false sends one frame per call; inferMany sends one frame', T, async () => {
  const client = await SkiffClient.connect(url, { coalesce: false });
  try {
    let before = stats.frames;
    const results = await Promise.all([1, 2, 3, 4, 5].map((s) => client.infer(doubleReq(s))));
    assert.equal(stats.frames - before, 5);
    results.forEach((r, i) => assertDoubled(r, i + 1));

    before = stats.frames;
    const batch = client.inferMany([7, 8, 9].map((s) => doubleReq(s)));
    assert.equal(stats.frames, before, 'nothing has arrived synchronously');
    const many = await batch;
    assert.equal(stats.frames - before, 1);
    assert.deepEqual(many.map((r) => r.id), batch.ids);
    many.forEach((r, i) => assertDoubled(r, i + 7));
  } finally {
    await client.close();
  }
});

test('frames are split at maxRequestsPerFrame', T, async () => {
  const client = await SkiffClient.connect(url, { maxRequestsPerFrame: 4 });
  try {
    const before = stats.frames;
    const results = await client.inferMany(Array.from({ length: 10 }, (_, i) => doubleReq(i)));
    assert.equal(stats.frames - before, 3);
    assert.deepEqual(stats.requestsPerFrame.slice(-3), [4, 4, 2]);
    results.forEach((r, i) => assertDoubled(r, i));
  } finally {
    await client.close();
  }
});

test('error answers resolve (not reject); a bad request does not disturb its frame-mates', T, async () => {
  const client = await SkiffClient.connect(url);
  try {
    const good = client.infer(doubleReq(4));
    const failing = client.infer(doubleReq(5, 'fail'));
    const invalid = client.infer({ model: 'double', inputs: [{ name: 'x', datatype: 'FP32', shape: [2], data: new Uint8Array(3) }] });
    const unencodable = assert.rejects(
      client.infer({ model: 'double', inputs: [{ name: 'x', datatype: 'FP32', shape: [0.5], data: new Uint8Array(0) }] }),
      RangeError,
    );
    const [g, f, inv] = await Promise.all([good, failing, invalid, unencodable]);
    assertDoubled(g!, 4);
    assert.equal(f!.error?.code, 'MODEL_NOT_FOUND');
    assert.equal(inv!.error?.code, 'INVALID_INPUT');
  } finally {
    await client.close();
  }
});

test('cancel reaches the server and the held request settles with its answer', T, async () => {
  const client = await SkiffClient.connect(url);
  try {
    const held = client.infer(doubleReq(1, 'hold'));
    const other = client.infer(doubleReq(2));
    assertDoubled(await other, 2);
    assert.equal(client.inFlight, 1);
    client.cancel(held.id);
    const res = await held;
    assert.ok(stats.cancels.includes(held.id));
    assert.equal(res.id, held.id);
    assert.equal(res.error?.code, 'DEADLINE_EXCEEDED');
    assert.throws(() => client.cancel(-1n), RangeError);
  } finally {
    await client.close();
  }
});

test('feedback is delivered with its inputs and label', T, async () => {
  const client = await SkiffClient.connect(url);
  try {
    const id = client.feedback({ app: 'digits', user: 'bob', label: 7, inputs: [{ name: 'x', datatype: 'UINT8', shape: [2], data: new Uint8Array([9, 8]) }] });
    // A request in the same tick rides in the same frame; its answer proves the frame arrived.
    assertDoubled(await client.infer(doubleReq(1)), 1);
    const got = stats.feedback.find((f) => f.id === id);
    assert.ok(got);
    assert.deepEqual({ ...got, inputs: got.inputs.map((t) => ({ ...t, data: Array.from(t.data) })) },
      { id, app: 'digits', user: 'bob', label: 7, inputs: [{ name: 'x', datatype: 'UINT8', shape: [2], data: [9, 8] }] });
    assert.throws(() => client.feedback({ app: 'a', label: 1, inputs: [{ name: 'x', datatype: 'UINT8', shape: [-0.5], data: new Uint8Array(0) }] }), RangeError);
  } finally {
    await client.close();
  }
});

test('raw garbage gets a frame-level error through onFrameError; stray answers are ignored', T, async () => {
  const errors: ErrorInfo[] = [];
  let signal!: () => void;
  const gotError = new Promise<void>((resolve) => {
    signal = resolve;
  });
  const client = await SkiffClient.connect(url, {
    onFrameError: (e) => {
      errors.push(e);
      signal();
    },
  });
  try {
    client.sendRaw(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    await gotError;
    assert.equal(errors[0]?.code, 'BAD_FRAME');

    const stray = await client.infer(doubleReq(1, 'stray'));
    assert.equal(stray.model, 'stray');
    assertDoubled(await client.infer(doubleReq(6)), 6);
    assert.equal(client.inFlight, 0);
  } finally {
    await client.close();
  }
});

test('a connection closed by the server rejects what is in flight; later calls reject at once', T, async () => {
  const client = await SkiffClient.connect(url);
  await Promise.all([
    assert.rejects(client.infer(doubleReq(1, 'hold')), /connection closed \(code 1011\)/),
    assert.rejects(client.infer(doubleReq(1, 'close')), /connection closed/),
  ]);
  assert.equal(client.inFlight, 0);
  await assert.rejects(client.infer(doubleReq(2)), /connection closed/);
  await client.close();
});

test('close() rejects requests still waiting', T, async () => {
  const client = await SkiffClient.connect(url);
  const held = assert.rejects(client.infer(doubleReq(1, 'hold')), /client closed/);
  assert.equal(await client.infer(doubleReq(3)).then((r) => r.id > 0n), true);
  const queued = assert.rejects(client.infer(doubleReq(2)), /client closed/);
  assert.equal(client.inFlight, 2);
  await Promise.all([held, queued, client.close()]);
  assert.equal(client.inFlight, 0);
});

test('connect rejects when nothing listens', T, async () => {
  // Port 1 on loopback: nothing listens there.
  await assert.rejects(SkiffClient.connect('ws://127.0.0.1:1/', { connectTimeoutMs: 2000 }), /ECONNREFUSED/);
});

test('large tensors survive the round trip through a real socket', T, async () => {
  const client = await SkiffClient.connect(url);
  try {
    const n = 256 * 1024; // 1 MiB of FP32 per request
    const x = Array.from({ length: n }, (_, i) => (i % 1000) / 8);
    const res = await client.infer({ model: 'double', inputs: [{ name: 'x', datatype: 'FP32', shape: [n], data: f32(x) }] });
    assert.equal(res.error, undefined);
    const y = floats(res.outputs[0]!);
    assert.equal(y.length, n);
    for (let i = 0; i < n; i += 997) assert.equal(y[i], 2 * x[i]!);
    assert.equal(res.outputs[0]!.data.byteOffset % 8, 0);
  } finally {
    await client.close();
  }
});

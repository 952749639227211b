import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { writeClassifier, writeDelayModel, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { SkiffClient, type ClientOptions, type ClientState, type WebSocketLike } from '../../src/client/index.js';
import { fp32, values } from '../../src/client/index.js';
import { nodeSocket } from '../../src/client/ws-client.js';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import { serve, tempDir } from './helpers.js';

/**
 * skiff-serve/client (the browser-safe client) against a real server, in Node over `ws`:
 * backpressure counted on the wire, cancellation, deadlines, reconnect through a TCP proxy
 * that is cut, and application queries with feedback. The browser round trip is in browser.test.ts.
 */

/** A TCP proxy in front of the server: `cut()` drops every connection, `blackhole` stops answers. */
class Proxy {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  blackhole = false;
  connections = 0;
  constructor(target: number) {
    this.server = createServer((down) => {
      this.connections++;
      const up = connect(target, '127.0.0.1');
      this.sockets.add(down).add(up);
      down.on('data', (d) => up.write(d));
      up.on('data', (d) => {
        if (!this.blackhole) down.write(d);
      });
      const end = (): void => {
        down.destroy();
        up.destroy();
        this.sockets.delete(down);
        this.sockets.delete(up);
      };
      down.on('close', end).on('error', end);
      up.on('close', end).on('error', end);
    });
  }
  listen(port = 0): Promise<number> {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => resolve((this.server.address() as { port: number }).port)));
  }
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }
  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Wire {
  out: number;
  peak: number;
  requests: number;
  cancels: number;
  /** Request ids in the order they went out (a re-sent id appears again). */
  sentIds?: bigint[];
  /** Ids of the answers that came back, in order. */
  answeredIds?: bigint[];
}

const newWire = (): Required<Wire> => ({ out: 0, peak: 0, requests: 0, cancels: 0, sentIds: [], answeredIds: [] });

/** A `ws` socket that counts, on the bytes it sends and receives, the requests awaiting answers. */
function countingSocket(wire: Wire): (url: string) => WebSocketLike {
  const make = nodeSocket();
  return (url) => {
    const ws = make(url) as WebSocketLike & { addEventListener(t: string, f: (ev: { data: unknown }) => void): void };
    const send = ws.send.bind(ws);
    ws.send = (bytes: Uint8Array): void => {
      const f = decodeFrame(bytes);
      wire.requests += f.requests.length;
      wire.sentIds?.push(...f.requests.map((r) => r.id));
      wire.cancels += f.cancel.length;
      wire.out += f.requests.length + f.feedback.length;
      wire.peak = Math.max(wire.peak, wire.out);
      send(bytes);
    };
    ws.addEventListener('message', (ev) => {
      const data = ev.data instanceof ArrayBuffer ? new Uint8Array(ev.data) : (ev.data as Uint8Array);
      const responses = decodeFrame(data).responses;
      wire.out -= responses.length;
      wire.answeredIds?.push(...responses.map((r) => r.id));
    });
    return ws;
  };
}

const row = (seed: number) => [seed, seed + 0.25, -seed, 1];
const T = { timeout: 30_000 };

describe('skiff-serve/client against a real server', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const connectTo = (url: string, opts: ClientOptions = {}) => SkiffClient.connect(url, { createSocket: nodeSocket(), ...opts });

  before(async () => {
    // 'slow' runs one query at a time for 120 ms; 'quick' batches; 'clf' is a classifier for an application.
    writeDelayModel(tmp.dir, 'slow', { delayMs: 120 });
    writeModelConfig(tmp.dir, 'slow', { max_batch_size: 1, replicas: 1, pipeline_depth: 1, cache_bytes: 0 });
    writeDelayModel(tmp.dir, 'quick', { delayMs: 8 });
    writeModelConfig(tmp.dir, 'quick', { max_batch_size: 2, replicas: 1, pipeline_depth: 1, cache_bytes: 0 });
    writeClassifier(tmp.dir, 'clf', { seed: 3, inputDim: 4, classes: 3 });
    server = await serve(tmp.dir);
    server.apps.add({ name: 'pick', input_type: 'floats', input_shape: [4], latency_slo_micros: 500_000, default_output: -1, policy: 'exp3', models: ['clf', 'quick'], seed: 1 });
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('backpressure: never more than maxInFlight queries on the wire; ready() paces a producer', T, async () => {
    const wire = { out: 0, peak: 0, requests: 0, cancels: 0 };
    const client = await connectTo(server.wsUrl, { maxInFlight: 4, createSocket: countingSocket(wire) });
    try {
      // 40 calls at once: 4 go out, 36 wait in the client.
      const calls = Array.from({ length: 40 }, (_, i) => client.infer({ model: 'quick', inputs: [fp32('input', row(i), [1, 4])] }));
      await Promise.resolve();
      assert.equal(client.onWire, 4);
      assert.equal(client.queued, 36);
      let readyEarly = false;
      void client.ready().then(() => { readyEarly = client.inFlight >= 4; });
      const answers = await Promise.all(calls);
      answers.forEach((r, i) => assert.deepEqual(values(r.outputs[0]!), row(i).map((v) => 2 * v), `answer ${i}`));
      assert.equal(wire.peak, 4, 'at most 4 requests awaited answers on the wire, and 4 did');
      assert.equal(readyEarly, false, 'ready() resolved only once the window had room');
      // A producer that awaits ready() before each call never has one waiting in the client.
      let maxOutstanding = 0;
      const paced: Promise<unknown>[] = [];
      for (let i = 0; i < 30; i++) {
        await client.ready();
        paced.push(client.infer({ model: 'quick', inputs: [fp32('input', row(i), [1, 4])] }));
        maxOutstanding = Math.max(maxOutstanding, client.inFlight);
      }
      await Promise.all(paced);
      assert.equal(maxOutstanding, 4, 'the producer kept exactly the window busy, no more');
      assert.ok(wire.peak <= 4);
      assert.equal(wire.requests, 70, 'every query went out exactly once');
    } finally {
      await client.close();
    }
  });

  it('cancellation: before sending, while waiting in the client, and on the server', T, async () => {
    const wire = { out: 0, peak: 0, requests: 0, cancels: 0 };
    const client = await connectTo(server.wsUrl, { maxInFlight: 2, createSocket: countingSocket(wire) });
    try {
      const aborted = new AbortController();
      aborted.abort();
      const pre = await client.infer({ model: 'slow', inputs: [fp32('input', row(1), [1, 4])] }, { signal: aborted.signal });
      assert.equal(pre.error?.code, 'CANCELLED');
      assert.equal(wire.requests, 0, 'an aborted call is never sent');

      // Two on the wire (one running, one queued on the server), one waiting in the client.
      const running = client.infer({ model: 'slow', inputs: [fp32('input', row(2), [1, 4])] });
      const onServer = new AbortController();
      const queuedThere = client.infer({ model: 'slow', inputs: [fp32('input', row(3), [1, 4])] }, { signal: onServer.signal });
      const inClient = new AbortController();
      const waiting = client.infer({ model: 'slow', inputs: [fp32('input', row(4), [1, 4])] }, { signal: inClient.signal });
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(wire.requests, 2);
      const t0 = performance.now();
      inClient.abort();
      onServer.abort();
      const [w, q] = await Promise.all([waiting, queuedThere]);
      assert.equal(w.error?.code, 'CANCELLED', 'the call waiting in the client is answered at once');
      assert.equal(q.error?.code, 'CANCELLED', `the server cancels the query it holds: ${JSON.stringify(q.error)}`);
      assert.ok(performance.now() - t0 < 100, 'the cancelled query did not wait for the model');
      assert.equal(wire.cancels, 1, 'one cancel went to the server');
      assert.equal(wire.requests, 2, 'the call cancelled in the client never went out');
      assert.deepEqual(values((await running).outputs[0]!), row(2).map((v) => 2 * v));
      // cancel(id) works the same without a signal.
      const c = client.infer({ model: 'slow', inputs: [fp32('input', row(5), [1, 4])] });
      client.cancel(c.id);
      assert.equal((await c).error?.code, 'CANCELLED');
    } finally {
      await client.close();
    }
  });

  it('deadlines: the server answers DEADLINE_EXCEEDED; with no answer at all, the client does', T, async () => {
    const client = await connectTo(server.wsUrl);
    try {
      const blocker = client.infer({ model: 'slow', inputs: [fp32('input', row(1), [1, 4])] });
      const late = await client.infer({ model: 'slow', inputs: [fp32('input', row(2), [1, 4])], timeoutMs: 40 });
      assert.equal(late.error?.code, 'DEADLINE_EXCEEDED', 'behind a 120 ms query, a 40 ms deadline cannot be met');
      await blocker;
    } finally {
      await client.close();
    }
    // Through a proxy that stops passing answers: the client answers by deadline + grace and cancels.
    const proxy = new Proxy(server.port);
    const port = await proxy.listen();
    const wire = { out: 0, peak: 0, requests: 0, cancels: 0 };
    const silent = await connectTo(`ws://127.0.0.1:${port}/ws`, { deadlineGraceMs: 100, createSocket: countingSocket(wire) });
    try {
      proxy.blackhole = true;
      const t0 = performance.now();
      const r = await silent.infer({ model: 'quick', inputs: [fp32('input', row(1), [1, 4])], timeoutMs: 100 });
      const took = performance.now() - t0;
      assert.equal(r.error?.code, 'DEADLINE_EXCEEDED');
      assert.ok(took >= 190 && took < 1000, `answered after deadline + grace (${took.toFixed(0)} ms)`);
      assert.equal(wire.cancels, 1, 'and told the server to drop it');
      assert.equal(silent.inFlight, 0);
    } finally {
      await silent.close();
      await proxy.close();
    }
  });

  it('reconnect: queries in flight when the connection is cut are sent again and answered', T, async () => {
    const proxy = new Proxy(server.port);
    const port = await proxy.listen();
    const states: ClientState[] = [];
    const wire = newWire();
    const client = await connectTo(`ws://127.0.0.1:${port}/ws`, { reconnect: { initialDelayMs: 50 }, onStateChange: (s) => states.push(s), createSocket: countingSocket(wire) });
    let gone: SkiffClient | undefined;
    try {
      // 'slow' answers one query per 120 ms: the cut comes after the first answer, mid-stream.
      const calls = Array.from({ length: 6 }, (_, i) => client.infer({ model: 'slow', inputs: [fp32('input', row(i), [1, 4])], timeoutMs: 10_000 }));
      await calls[0];
      proxy.cut();
      const answeredBefore = new Set(wire.answeredIds);
      assert.ok(answeredBefore.size >= 1 && answeredBefore.size < 6, `cut mid-stream (${answeredBefore.size} answered)`);
      while (client.state !== 'reconnecting') await new Promise((r) => setTimeout(r, 1));
      // Made while the connection is down: queued, then sent on the new connection.
      const during = client.infer({ model: 'quick', inputs: [fp32('input', row(9), [1, 4])] });
      const answers = await Promise.all([...calls, during]);
      answers.slice(0, 6).forEach((r, i) => assert.deepEqual(values(r.outputs[0]!), row(i).map((v) => 2 * v), `answer ${i}: ${JSON.stringify(r.error)}`));
      assert.deepEqual(values(answers[6]!.outputs[0]!), row(9).map((v) => 2 * v));
      // Exactly what was unanswered went out again, once each; nothing answered was repeated.
      const sends = new Map<bigint, number>();
      for (const id of wire.sentIds) sends.set(id, (sends.get(id) ?? 0) + 1);
      for (const c of calls) assert.equal(sends.get(c.id), answeredBefore.has(c.id) ? 1 : 2, `request ${c.id} sent ${sends.get(c.id)} times`);
      assert.equal(sends.get(during.id), 1);
      // And the server's answers reached the client once per query: none from both connections.
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual([...wire.answeredIds].sort(), [...calls, during].map((c) => c.id).sort());
      assert.equal(client.reconnectCount, 1);
      assert.deepEqual(states, ['open', 'reconnecting', 'open']);
      assert.equal(proxy.connections, 2);
      await client.close();
      // With the server gone for good, the client gives up after maxAttempts and rejects what waits.
      gone = await connectTo(`ws://127.0.0.1:${port}/ws`, { reconnect: { initialDelayMs: 20, maxDelayMs: 40, maxAttempts: 3 } });
      const pending = gone.infer({ model: 'slow', inputs: [fp32('input', row(1), [1, 4])] });
      await new Promise((r) => setTimeout(r, 20));
      await proxy.close();
      await assert.rejects(pending, /gave up after 3 reconnect attempts/);
      assert.equal(gone.state, 'closed');
      await assert.rejects(gone.infer({ model: 'slow', inputs: [fp32('input', row(1), [1, 4])] }), /gave up/);
    } finally {
      await client.close();
      await gone?.close();
      await proxy.close().catch(() => undefined);
    }
  });

  it('reconnect: a query whose deadline passes while disconnected is answered locally and never sent', T, async () => {
    const proxy = new Proxy(server.port);
    const port = await proxy.listen();
    const wire = newWire();
    const client = await connectTo(`ws://127.0.0.1:${port}/ws`, {
      reconnect: { initialDelayMs: 40, maxDelayMs: 80 }, deadlineGraceMs: 5000, createSocket: countingSocket(wire),
    });
    try {
      // The server goes away: the proxy stops listening and drops the connection.
      await proxy.close();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(client.state, 'reconnecting');
      const t0 = performance.now();
      const short = client.infer({ model: 'quick', inputs: [fp32('input', row(1), [1, 4])], timeoutMs: 150 });
      const absolute = client.infer({ model: 'quick', inputs: [fp32('input', row(2), [1, 4])], deadlineUnixUs: (Date.now() + 200) * 1000 });
      const patient = client.infer({ model: 'quick', inputs: [fp32('input', row(3), [1, 4])], timeoutMs: 20_000 });
      const [s, a] = await Promise.all([short, absolute]);
      const took = performance.now() - t0;
      assert.equal(s.error?.code, 'DEADLINE_EXCEEDED');
      assert.equal(a.error?.code, 'DEADLINE_EXCEEDED');
      assert.ok(took >= 140 && took < 2000, `answered at the deadline, not after the grace period (${took.toFixed(0)} ms)`);
      // The server comes back on the same port: the patient query goes out and is answered; the
      // expired ones never reach the wire.
      await proxy.listen(port);
      const p = await patient;
      assert.deepEqual(values(p.outputs[0]!), row(3).map((v) => 2 * v));
      assert.deepEqual(wire.sentIds, [patient.id]);
      assert.equal(client.reconnectCount, 1);
    } finally {
      await client.close();
      await proxy.close().catch(() => undefined);
    }
  });

  it('reconnect: a query cancelled before the connection dropped is answered CANCELLED, not sent again', T, async () => {
    const proxy = new Proxy(server.port);
    const port = await proxy.listen();
    const wire = newWire();
    const client = await connectTo(`ws://127.0.0.1:${port}/ws`, { reconnect: { initialDelayMs: 40 }, createSocket: countingSocket(wire) });
    try {
      // The server's answers stop reaching the client: the cancel goes out, its answer never comes.
      proxy.blackhole = true;
      const ac = new AbortController();
      const call = client.infer({ model: 'slow', inputs: [fp32('input', row(1), [1, 4])] }, { signal: ac.signal });
      const other = client.infer({ model: 'slow', inputs: [fp32('input', row(2), [1, 4])] });
      await new Promise((r) => setTimeout(r, 30));
      ac.abort();
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(wire.cancels, 1);
      proxy.blackhole = false;
      proxy.cut();
      const r = await call;
      assert.equal(r.error?.code, 'CANCELLED');
      const o = await other;
      assert.deepEqual(values(o.outputs[0]!), row(2).map((v) => 2 * v), 'the other query was sent again and answered');
      assert.deepEqual(wire.sentIds.filter((id) => id === call.id), [call.id], 'the cancelled query went out once');
      assert.deepEqual(wire.sentIds.filter((id) => id === other.id), [other.id, other.id]);
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it('application queries and feedback', T, async () => {
    const client = await connectTo(server.wsUrl);
    try {
      const inputs = [fp32('input', row(1), [4])];
      const r = await client.infer({ app: 'pick', inputs });
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.modelsUsed?.length, 1);
      const fb = await client.sendFeedback({ app: 'pick', inputs, label: 1 });
      assert.equal(fb.error, undefined, fb.error?.message);
      assert.ok((fb.modelsUsed ?? []).length >= 1, 'feedback reached the policy');
      const bad = await client.sendFeedback({ app: 'nope', inputs, label: 1 });
      assert.equal(bad.error?.code, 'APP_NOT_FOUND');
    } finally {
      await client.close();
    }
  });
});

/**
 * Protocol drivers: one generator thread's connections to the target and the matching of
 * answers to what was sent. The load loop (worker.ts) hands a driver `Unit`s (one WebSocket
 * frame of k requests, or one HTTP request) and hears back through the `AnswerSink`.
 *
 * Every request of every unit is reported to the sink exactly once: as answered, as an error
 * the server sent, or as a transport failure (connection closed, none left, drain timeout).
 * Single-threaded: all calls happen on the owning generator thread.
 */
import WebSocket from 'ws';
import { ByteBuffer } from 'flatbuffers';
import * as fb from '../../src/protocol/generated/skiff_generated.js';
import { Http1Connection } from './http1.js';
import { stampFrame, stampHttp, type FrameTemplate, type HttpTemplate } from './templates.js';
import type { CacheHitPolicy } from './payload.js';

export interface Unit {
  /** Latency is measured from here (ms, performance.now): the intended send time in open loop. */
  startMs: number;
  /** When the unit actually left (may be later than startMs when it queued for a connection). */
  sentMs: number;
  measured: boolean;
  /** Requests not yet reported. */
  remaining: number;
  /** Called once when every request of the unit has been reported. */
  done: (() => void) | null;
}

export const OK = 0;
export const DEFAULT = 1;
export const ERROR = 2;
export type Outcome = typeof OK | typeof DEFAULT | typeof ERROR;

/** `n` requests of `unit` ended with `outcome` (`code` names the error) at `nowMs`. */
export type AnswerSink = (unit: Unit, outcome: Outcome, code: string | undefined, n: number, nowMs: number) => void;

export interface Driver {
  /** Requests per unit. */
  readonly k: number;
  connect(): Promise<void>;
  send(unit: Unit): void;
  /** Fail every unit still waiting (drain timeout) with `code`. */
  failOutstanding(code: string): void;
  close(): void;
}

const ZERO_MASK = (mask: Buffer): void => {
  mask.fill(0);
};

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // A zero mask is valid (RFC 6455) and lets `ws` send the stamped buffer without a masked copy.
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30, generateMask: ZERO_MASK });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

interface WsConn {
  ws: WebSocket;
  alive: boolean;
  /** Skiff protocol: units by request id. Echo: units in send order. */
  byId: Map<number, Unit>;
  fifo: Unit[];
}

/** Shared WebSocket plumbing: connections, round-robin, failure of a closed connection's units. */
abstract class WsDriverBase implements Driver {
  protected readonly conns: WsConn[] = [];
  private rr = 0;
  private tpl = 0;
  private nextId = 1;

  constructor(
    protected readonly url: string,
    private readonly connections: number,
    protected readonly templates: FrameTemplate[],
    private readonly policy: CacheHitPolicy,
    protected readonly sink: AnswerSink,
  ) {}

  get k(): number {
    return this.templates[0]!.idAt.length;
  }

  async connect(): Promise<void> {
    for (let i = 0; i < this.connections; i++) {
      const ws = await openWs(this.url);
      const c: WsConn = { ws, alive: true, byId: new Map(), fifo: [] };
      ws.on('message', (data: Buffer) => this.onMessage(c, data));
      ws.on('error', () => undefined);
      ws.on('close', () => this.lost(c, 'CONNECTION_CLOSED'));
      this.conns.push(c);
    }
  }

  send(unit: Unit): void {
    const c = this.pick();
    if (!c) {
      this.sink(unit, ERROR, 'NO_CONNECTION', unit.remaining, performance.now());
      return;
    }
    const t = this.templates[this.tpl]!;
    this.tpl = (this.tpl + 1) % this.templates.length;
    const k = t.idAt.length;
    let marks: ([number, number] | undefined)[] | null = null;
    for (let j = 0; j < k; j++) {
      const m = this.policy.next();
      if (m) (marks ??= new Array(k))[j] = m;
    }
    const first = this.nextId;
    this.nextId += k;
    this.track(c, unit, first, k);
    unit.sentMs = performance.now();
    c.ws.send(stampFrame(t, first, marks), { binary: true });
  }

  private pick(): WsConn | null {
    for (let i = 0; i < this.conns.length; i++) {
      const c = this.conns[this.rr]!;
      this.rr = (this.rr + 1) % this.conns.length;
      if (c.alive) return c;
    }
    return null;
  }

  protected abstract track(c: WsConn, unit: Unit, firstId: number, k: number): void;
  protected abstract onMessage(c: WsConn, data: Buffer): void;
  protected abstract drop(c: WsConn, code: string): void;

  private lost(c: WsConn, code: string): void {
    if (!c.alive) return;
    c.alive = false;
    this.drop(c, code);
  }

  failOutstanding(code: string): void {
    for (const c of this.conns) this.drop(c, code);
  }

  close(): void {
    for (const c of this.conns) {
      c.alive = false;
      c.ws.terminate();
    }
  }
}

/** Skiff's protocol: responses matched by id, possibly many per frame and out of order. */
export class SkiffWsDriver extends WsDriverBase {
  private readonly frame = new fb.Frame();
  private readonly res = new fb.Response();
  private readonly err = new fb.Error();

  protected track(c: WsConn, unit: Unit, firstId: number, k: number): void {
    for (let j = 0; j < k; j++) c.byId.set(firstId + j, unit);
  }

  protected onMessage(c: WsConn, data: Buffer): void {
    const now = performance.now();
    const bb = new ByteBuffer(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    const f = fb.Frame.getRootAsFrame(bb, this.frame);
    const n = f.responsesLength();
    for (let i = 0; i < n; i++) {
      const r = f.responses(i, this.res)!;
      const id = Number(r.id());
      const unit = c.byId.get(id);
      if (!unit) continue;
      c.byId.delete(id);
      const e = r.error(this.err);
      if (e) this.sink(unit, ERROR, e.code() ?? 'ERROR', 1, now);
      else this.sink(unit, r.isDefault() ? DEFAULT : OK, undefined, 1, now);
    }
  }

  protected drop(c: WsConn, code: string): void {
    const now = performance.now();
    const units = [...c.byId.values()];
    c.byId.clear();
    for (const u of units) this.sink(u, ERROR, code, 1, now);
  }
}

/** A bare echo server: each message answers the oldest outstanding frame (WebSocket keeps order). */
export class EchoWsDriver extends WsDriverBase {
  protected track(c: WsConn, unit: Unit): void {
    c.fifo.push(unit);
  }

  protected onMessage(c: WsConn): void {
    const unit = c.fifo.shift();
    if (unit) this.sink(unit, OK, undefined, unit.remaining, performance.now());
  }

  protected drop(c: WsConn, code: string): void {
    const now = performance.now();
    const units = c.fifo;
    c.fifo = [];
    for (const u of units) this.sink(u, ERROR, code, u.remaining, now);
  }
}

/** Most units a thread queues locally while every HTTP connection is busy. */
const MAX_HTTP_QUEUE = 1_000_000;
const DEFAULT_MARK = Buffer.from('"default":true');

/**
 * OIP REST over keep-alive HTTP/1.1: one request in flight per connection; units that find
 * every connection busy wait in a FIFO (their latency still counts from `startMs`).
 */
export class HttpDriver implements Driver {
  readonly k = 1;
  private readonly conns: Http1Connection[] = [];
  private readonly free: Http1Connection[] = [];
  private readonly queue: Unit[] = [];
  private queueHead = 0;
  private readonly inflight = new Map<Http1Connection, Unit>();
  private tpl = 0;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly connections: number,
    private readonly templates: { plain: HttpTemplate[]; marked: HttpTemplate[] },
    private readonly policy: CacheHitPolicy,
    private readonly sink: AnswerSink,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.connections; i++) {
      const c = await Http1Connection.connect(this.host, this.port);
      c.onClose = () => {
        const i = this.free.indexOf(c);
        if (i >= 0) this.free.splice(i, 1);
        if (!this.conns.some((x) => x.alive)) this.failQueued('NO_CONNECTION');
      };
      this.conns.push(c);
      this.free.push(c);
    }
  }

  send(unit: Unit): void {
    const c = this.free.pop();
    if (c) return this.issue(c, unit);
    if (!this.conns.some((x) => x.alive)) {
      this.sink(unit, ERROR, 'NO_CONNECTION', 1, performance.now());
      return;
    }
    if (this.queue.length - this.queueHead >= MAX_HTTP_QUEUE) {
      this.sink(unit, ERROR, 'CLIENT_QUEUE_FULL', 1, performance.now());
      return;
    }
    this.queue.push(unit);
  }

  private issue(c: Http1Connection, unit: Unit): void {
    const i = this.tpl;
    this.tpl = (this.tpl + 1) % this.templates.plain.length;
    const mark = this.policy.next();
    const bytes = mark ? stampHttp(this.templates.marked[i]!, mark) : this.templates.plain[i]!.bytes;
    this.inflight.set(c, unit);
    unit.sentMs = performance.now();
    c.request(bytes, (err, status, body) => {
      // failOutstanding() already reported this unit (and closed the connection).
      if (this.inflight.get(c) !== unit) return;
      this.inflight.delete(c);
      const now = performance.now();
      if (err) this.sink(unit, ERROR, 'CONNECTION_CLOSED', 1, now);
      else if (status === 200) this.sink(unit, body.indexOf(DEFAULT_MARK) >= 0 ? DEFAULT : OK, undefined, 1, now);
      else this.sink(unit, ERROR, errorCode(status, body), 1, now);
      if (!c.alive) return;
      const next = this.dequeue();
      if (next) this.issue(c, next);
      else this.free.push(c);
    });
  }

  private dequeue(): Unit | undefined {
    if (this.queueHead >= this.queue.length) return undefined;
    const u = this.queue[this.queueHead++];
    if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return u;
  }

  private failQueued(code: string): void {
    const now = performance.now();
    for (let u = this.dequeue(); u; u = this.dequeue()) this.sink(u, ERROR, code, 1, now);
  }

  failOutstanding(code: string): void {
    this.failQueued(code);
    const now = performance.now();
    const stuck = [...this.inflight.entries()];
    this.inflight.clear();
    for (const [c, u] of stuck) {
      // The connection may still answer later: close it so nothing is counted twice.
      c.onClose = undefined;
      c.close();
      this.sink(u, ERROR, code, 1, now);
    }
  }

  close(): void {
    for (const c of this.conns) {
      c.onClose = undefined;
      c.close();
    }
  }
}

function errorCode(status: number, body: Buffer): string {
  const m = /"code"\s*:\s*"([A-Z_]+)"/.exec(body.toString('utf8', 0, Math.min(body.length, 4096)));
  return m ? `HTTP_${status}_${m[1]}` : `HTTP_${status}`;
}

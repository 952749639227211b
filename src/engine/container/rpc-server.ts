import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Router } from 'zeromq';
import type { Logger } from 'pino';
import {
  decodeContainerMessage, encodeHeartbeat, encodePredict, HEARTBEAT_KEEPALIVE, HEARTBEAT_REQUEST_METADATA, type InputType,
} from './rpc-codec.js';
import type { ContainerHub, ContainerPeer, ContainerSink } from './container-runner.js';

/**
 * The container RPC server: ZeroMQ ROUTER sockets speaking Clipper's RPC version 3, which model
 * containers (Clipper's own Python/Java/R libraries, Skiff's Python library, anything that
 * follows the protocol) connect to with a DEALER. A container that announces (model, version)
 * becomes a replica of the runner attached to that version.
 *
 * Sessions: a container starts with a heartbeat; an unknown peer is asked for its metadata
 * (heartbeat type 1); its NewContainer makes it a replica; later heartbeats get keep-alives. A
 * container announcing a version nobody serves is refused (counted, logged once) and asked for
 * its metadata again at its next heartbeat, so it is adopted if that version is attached later.
 *
 * Dead peers: the ROUTER reports every connect and disconnect (ZMQ_ROUTER_NOTIFY, a libzmq draft
 * option the bundled build has), so a killed container is known within a millisecond on loopback;
 * ZMTP heartbeats close the connection of a host that vanished without a FIN. A peer that stays
 * silent while idle beyond the heartbeat silence limit is dropped too.
 *
 * Besides the shared endpoint, `openEndpoint` binds a private ROUTER for one launched process,
 * so Skiff knows which process a connection belongs to (a hung one can be restarted).
 *
 * Hostile peers: every message is decoded totally (rpc-codec.ts); garbage, unknown msg_ids, a
 * wrong number of outputs and content from unannounced peers are counted and logged (rate-limited)
 * and harm no one else; libzmq cuts off a peer whose frame exceeds `maxMessageBytes`.
 * Main thread only.
 */
export interface RpcServerOptions {
  /** Loopback by default: the RPC port runs code (whatever connects serves answers). */
  host: string;
  /** 0 = a free port (see `port`). */
  port: number;
  log: Logger;
  /** ZMTP heartbeats on the ROUTER (ms); the connection closes after `heartbeatTimeoutMs` of silence. */
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** Largest message a peer may send (libzmq drops the connection beyond it). */
  maxMessageBytes?: number;
  /** An idle peer silent this long is dropped (Clipper's containers heartbeat every 5 s when idle). */
  silenceMs?: number;
}

export interface PeerInfo {
  id: string;
  model: string;
  version: string;
  inputType: InputType;
  /** The private endpoint's tag (launched processes), or undefined for the shared endpoint. */
  tag?: string;
  /** Epoch ms of the NewContainer. */
  since: number;
  inflight: number;
  /** Integer per (model, version), in connection order (Clipper's model_replica_id). */
  replicaId: number;
}

const ZMQ_ROUTER_NOTIFY = 97;
const NOTIFY_CONNECT_AND_DISCONNECT = 3;
const LOG_EVERY_MS = 10_000;
const MAX_REFUSED = 1024;

interface Pending {
  done: (err: Error | null, outputs?: Uint8Array[]) => void;
  inputs: number;
}

class Endpoint {
  private readonly queue: (readonly Uint8Array[])[] = [];
  private sending = false;
  closed = false;

  constructor(
    readonly index: number,
    readonly router: Router,
    readonly port: number,
    readonly tag: string | undefined,
    private readonly onSendError: (routing: Uint8Array, err: unknown) => void,
    readonly ipc?: string,
  ) {}

  /** Queue a message (routing id first); zeromq.js allows one send in progress per socket. */
  send(frames: readonly Uint8Array[]): void {
    if (this.closed) return;
    this.queue.push(frames);
    if (!this.sending) void this.pump();
  }

  private async pump(): Promise<void> {
    this.sending = true;
    while (this.queue.length > 0 && !this.closed) {
      const m = this.queue.shift()!;
      try {
        await this.router.send(m as Uint8Array[]);
      } catch (err) {
        if (!this.closed) this.onSendError(m[0]!, err);
      }
    }
    this.sending = false;
  }
}

class Peer implements ContainerPeer {
  readonly pending = new Map<number, Pending>();
  gone = false;
  lastHeard = Date.now();
  readonly since = Date.now();

  constructor(
    private readonly server: RpcServer,
    readonly key: string,
    readonly endpoint: Endpoint,
    readonly routing: Uint8Array,
    readonly model: string,
    readonly version: string,
    readonly inputType: InputType,
    readonly sink: ContainerSink,
    readonly replicaId: number,
  ) {}

  get id(): string {
    return this.key;
  }

  get tag(): string | undefined {
    return this.endpoint.tag;
  }

  get inflight(): number {
    return this.pending.size;
  }

  predict(inputs: readonly Uint8Array[], done: (err: Error | null, outputs?: Uint8Array[]) => void): void {
    if (this.gone) {
      queueMicrotask(() => done(new Error('container is gone')));
      return;
    }
    const msgId = this.server.nextMsgId();
    this.pending.set(msgId, { done, inputs: inputs.length });
    this.endpoint.send([this.routing, ...encodePredict(msgId, this.inputType, inputs)]);
  }

  drop(reason: string): void {
    this.server.forget(this, reason);
  }
}

export class RpcServer implements ContainerHub {
  private readonly endpoints: Endpoint[] = [];
  private readonly peersByKey = new Map<string, Peer>();
  /** Connections open now (from the ROUTER's connect/disconnect notifications). */
  private readonly open = new Set<string>();
  /** Peers that announced a version nobody serves: adopted if it is attached later. */
  private readonly refused = new Map<string, { endpoint: Endpoint; routing: Uint8Array; model: string; version: string; inputType: InputType }>();
  private readonly sinks = new Map<string, ContainerSink>();
  private readonly replicaSeq = new Map<string, number>();
  private readonly lastLog = new Map<string, number>();
  private readonly sweep: NodeJS.Timeout;
  private msgSeq = 0;
  private closed = false;
  readonly counters: Record<string, number> = {};

  private constructor(private readonly opts: RpcServerOptions) {
    const silence = opts.silenceMs ?? 30_000;
    this.sweep = setInterval(() => this.dropSilent(silence), Math.min(5000, silence / 2));
    this.sweep.unref();
  }

  static async start(opts: RpcServerOptions): Promise<RpcServer> {
    const s = new RpcServer(opts);
    await s.bind(opts.port, undefined);
    return s;
  }

  /** The shared endpoint's port. */
  get port(): number {
    return this.endpoints[0]!.port;
  }

  get host(): string {
    return this.opts.host;
  }

  private async bind(port: number, tag: string | undefined): Promise<Endpoint> {
    // Named before any await: concurrent binds must not pick the same socket file (libzmq unlinks
    // an existing path when it binds, which would steal another endpoint's socket).
    const ipcName = tag === undefined ? undefined : `${this.ipcSeq++}.sock`;
    const router = new Router({
      linger: 0,
      mandatory: true,
      // A peer that does not read its messages must not stall everyone's sends.
      sendTimeout: 1000,
      heartbeatInterval: this.opts.heartbeatIntervalMs ?? 1000,
      heartbeatTimeout: this.opts.heartbeatTimeoutMs ?? 3000,
      heartbeatTimeToLive: this.opts.heartbeatTimeoutMs ?? 3000,
      maxMessageSize: this.opts.maxMessageBytes ?? 256 * 1024 * 1024,
    });
    try {
      (router as unknown as { setInt32Option(o: number, v: number): void }).setInt32Option(ZMQ_ROUTER_NOTIFY, NOTIFY_CONNECT_AND_DISCONNECT);
    } catch {
      this.opts.log.warn('this libzmq build has no ROUTER_NOTIFY: dead containers are found by silence and send errors only');
    }
    // Private endpoints are for processes this server launched: loopback only.
    const raw = tag === undefined ? this.opts.host : '127.0.0.1';
    const host = raw.includes(':') ? `[${raw}]` : raw;
    try {
      await router.bind(`tcp://${host}:${port}`);
    } catch (err) {
      router.close();
      throw new Error(`cannot bind the container RPC port ${host}:${port}: ${(err as Error).message}`);
    }
    const bound = Number(/:(\d+)$/.exec(router.lastEndpoint ?? '')?.[1] ?? port);
    // A launched process may also use a Unix socket (faster than TCP on loopback): Skiff's Python
    // library takes SKIFF_RPC_ADDRESS; Clipper's containers use CLIPPER_IP/CLIPPER_PORT.
    let ipc: string | undefined;
    if (ipcName !== undefined) {
      ipc = `ipc://${join(this.ipcDir(), ipcName)}`;
      try {
        await router.bind(ipc);
      } catch {
        ipc = undefined;
      }
    }
    const ep = new Endpoint(this.endpoints.length, router, bound, tag, (routing, err) => this.sendFailed(ep, routing, err), ipc);
    this.endpoints.push(ep);
    void this.receive(ep);
    return ep;
  }

  /** A private endpoint for one launched process: its connections are tagged `tag`. */
  async openEndpoint(tag: string): Promise<{ port: number; ipc?: string; close(): void }> {
    const ep = await this.bind(0, tag);
    return { port: ep.port, ipc: ep.ipc, close: () => this.closeEndpoint(ep) };
  }

  private ipcDirPath: string | null = null;
  private ipcSeq = 0;

  /** A private directory for the Unix sockets of launched processes (removed on close). */
  private ipcDir(): string {
    this.ipcDirPath ??= mkdtempSync(join(tmpdir(), 'skiff-rpc-'));
    return this.ipcDirPath;
  }

  private closeEndpoint(ep: Endpoint): void {
    if (ep.closed) return;
    ep.closed = true;
    for (const p of [...this.peersByKey.values()]) if (p.endpoint === ep) this.lose(p, 'endpoint closed');
    for (const k of [...this.refused.keys()]) if (this.refused.get(k)!.endpoint === ep) this.refused.delete(k);
    ep.router.close();
    if (ep.ipc) rmSync(ep.ipc.slice('ipc://'.length), { force: true });
  }

  nextMsgId(): number {
    this.msgSeq = (this.msgSeq + 1) >>> 0;
    return this.msgSeq;
  }

  private count(name: string): void {
    this.counters[name] = (this.counters[name] ?? 0) + 1;
  }

  /** Log at most once per LOG_EVERY_MS per `what` (a rogue peer must not flood the log). */
  private warn(what: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if ((this.lastLog.get(what) ?? 0) + LOG_EVERY_MS > now) return;
    this.lastLog.set(what, now);
    if (this.lastLog.size > 4096) this.lastLog.clear();
    this.opts.log.warn(fields, msg);
  }

  private async receive(ep: Endpoint): Promise<void> {
    try {
      for await (const frames of ep.router) {
        try {
          this.onMessage(ep, frames);
        } catch (err) {
          this.count('internal_error');
          this.warn('internal', { err: (err as Error).message }, 'error while handling a container message');
        }
      }
    } catch (err) {
      if (!this.closed && !ep.closed) this.opts.log.error({ err: (err as Error).message }, 'container RPC receive loop ended');
    }
  }

  private onMessage(ep: Endpoint, frames: Buffer[]): void {
    const routing = frames[0]!;
    const key = `${ep.index}:${routing.toString('hex')}`;
    // A connect or disconnect notification: the routing id and one empty frame.
    if (frames.length === 2 && frames[1]!.byteLength === 0) {
      if (this.open.delete(key)) this.closedConnection(key);
      else this.open.add(key);
      return;
    }
    const msg = decodeContainerMessage(frames.slice(1));
    const peer = this.peersByKey.get(key);
    if (peer) peer.lastHeard = Date.now();
    switch (msg.kind) {
      case 'heartbeat':
        ep.send([routing, ...encodeHeartbeat(peer ? HEARTBEAT_KEEPALIVE : HEARTBEAT_REQUEST_METADATA)]);
        return;
      case 'new_container':
        this.announce(ep, key, routing, msg.model, msg.version, msg.inputType);
        return;
      case 'content': {
        if (!peer) {
          this.count('content_from_unknown_peer');
          this.warn(`unknown:${key}`, { peer: key }, 'container content from a peer that never announced itself; ignored');
          return;
        }
        const p = peer.pending.get(msg.msgId);
        if (!p) {
          this.count('unknown_msg_id');
          this.warn(`msgid:${key}`, { peer: key, model: peer.model, msgId: msg.msgId }, 'container answered an unknown msg_id; ignored');
          return;
        }
        peer.pending.delete(msg.msgId);
        if (msg.outputs.length !== p.inputs) {
          this.count('wrong_output_count');
          this.warn(`outputs:${key}`, { peer: key, model: peer.model, outputs: msg.outputs.length, inputs: p.inputs }, 'container returned a wrong number of outputs');
          p.done(new Error(`container returned ${msg.outputs.length} outputs for ${p.inputs} inputs`));
          return;
        }
        p.done(null, msg.outputs);
        return;
      }
      case 'garbage':
        this.count(`garbage_${msg.reason}`);
        this.warn(`garbage:${msg.reason}`, { peer: key, reason: msg.reason, detail: msg.detail }, 'malformed message from a container; ignored');
        return;
    }
  }

  private announce(ep: Endpoint, key: string, routing: Uint8Array, model: string, version: string, inputType: InputType): void {
    const existing = this.peersByKey.get(key);
    if (existing) {
      if (existing.model === model && existing.version === version && existing.inputType === inputType) return;
      this.lose(existing, 'container announced another model');
    }
    const sink = this.sinks.get(`${model}\0${version}`);
    if (!sink) {
      this.count('refused_unknown_model');
      if (!this.refused.has(key)) this.warn(`refused:${model}:${version}`, { peer: key, model, version }, 'a container announced a model version this server does not serve; refused until it is added');
      if (this.refused.size >= MAX_REFUSED) this.refused.delete(this.refused.keys().next().value!);
      this.refused.set(key, { endpoint: ep, routing, model, version, inputType });
      return;
    }
    this.refused.delete(key);
    this.adopt(ep, key, routing, model, version, inputType, sink);
  }

  private adopt(ep: Endpoint, key: string, routing: Uint8Array, model: string, version: string, inputType: InputType, sink: ContainerSink): void {
    const mv = `${model}\0${version}`;
    const replicaId = this.replicaSeq.get(mv) ?? 0;
    this.replicaSeq.set(mv, replicaId + 1);
    const peer = new Peer(this, key, ep, routing, model, version, inputType, sink, replicaId);
    this.peersByKey.set(key, peer);
    this.count('connected');
    this.opts.log.info({ peer: key, model, version, inputType, tag: ep.tag }, 'model container connected');
    // Tell the container it is known (its next heartbeat would get the same).
    ep.send([routing, ...encodeHeartbeat(HEARTBEAT_KEEPALIVE)]);
    sink.connected(peer);
  }

  /** Serve (model, version): announced containers become replicas delivered to `sink`. */
  attach(model: string, version: string, sink: ContainerSink): () => void {
    const mv = `${model}\0${version}`;
    this.sinks.set(mv, sink);
    for (const [key, r] of [...this.refused]) {
      if (r.model !== model || r.version !== version || r.endpoint.closed) continue;
      this.refused.delete(key);
      this.adopt(r.endpoint, key, r.routing, model, version, r.inputType, sink);
    }
    return () => {
      if (this.sinks.get(mv) !== sink) return;
      this.sinks.delete(mv);
      // Forgotten, not closed: they wait (as refused) for the version to be attached again.
      for (const p of [...this.peersByKey.values()]) {
        if (p.sink !== sink) continue;
        p.gone = true;
        p.pending.clear();
        this.peersByKey.delete(p.key);
        this.refused.set(p.key, { endpoint: p.endpoint, routing: p.routing, model, version, inputType: p.inputType });
      }
    };
  }

  /** A peer's connection closed (the container exited, was killed, or reconnected with a new socket). */
  private closedConnection(key: string): void {
    this.refused.delete(key);
    const p = this.peersByKey.get(key);
    if (p) {
      this.count('disconnected');
      this.lose(p, 'connection closed');
    }
  }

  /** Forget a peer now (hung, or told to); it becomes a replica again if it announces itself again. */
  forget(p: Peer, reason: string): void {
    if (this.peersByKey.get(p.key) !== p) return;
    this.count('dropped');
    this.lose(p, reason);
  }

  private lose(p: Peer, reason: string): void {
    this.peersByKey.delete(p.key);
    p.gone = true;
    p.pending.clear();
    this.opts.log.info({ peer: p.key, model: p.model, version: p.version, reason }, 'model container lost');
    if (this.sinks.get(`${p.model}\0${p.version}`) === p.sink) p.sink.disconnected(p, reason);
  }

  private sendFailed(ep: Endpoint, routing: Uint8Array, err: unknown): void {
    const key = `${ep.index}:${Buffer.from(routing).toString('hex')}`;
    this.count('send_failed');
    this.open.delete(key);
    this.refused.delete(key);
    const p = this.peersByKey.get(key);
    if (p) this.lose(p, `send failed: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }

  private dropSilent(silenceMs: number): void {
    const now = Date.now();
    for (const p of [...this.peersByKey.values()]) {
      if (p.pending.size === 0 && now - p.lastHeard > silenceMs) {
        this.count('silent');
        this.lose(p, `silent for ${Math.round((now - p.lastHeard) / 1000)} s`);
      }
    }
  }

  /** Every announced container. */
  peers(): PeerInfo[] {
    return [...this.peersByKey.values()].map((p) => ({
      id: p.key, model: p.model, version: p.version, inputType: p.inputType, tag: p.endpoint.tag, since: p.since, inflight: p.pending.size, replicaId: p.replicaId,
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweep);
    for (const ep of this.endpoints) {
      ep.closed = true;
      ep.router.close();
    }
    for (const p of this.peersByKey.values()) {
      p.gone = true;
      p.pending.clear();
    }
    this.peersByKey.clear();
    if (this.ipcDirPath) rmSync(this.ipcDirPath, { recursive: true, force: true });
  }
}

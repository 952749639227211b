/**
 * A Skiff cluster on loopback, for multi-instance tests and the cluster benchmark: a real
 * redis-server (Debian's), N real `skiff serve` processes, and HAProxy (Debian's) in front —
 * all run as the current user from configs in one temporary directory, no system service.
 *
 * Why HAProxy rather than nginx: it proxies WebSocket upgrades with no extra configuration, it
 * checks readiness actively (GET /v2/health/ready, as Kubernetes' readiness probe does, so a
 * starting or draining instance gets no traffic), and on a refused connection it retries the
 * request on another server (`retry-on conn-failure` + `option redispatch`): a killed instance is
 * routed around at once, before its health checks fail. Only connection failures are retried, so
 * a request an instance may have processed is never sent twice. Passive checks (`observe layer4`)
 * mark a server down on its first connection error.
 *
 * Teardown kills everything this module started — also when a start fails half-way and when the
 * test process exits without calling stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { CLI } from './process-helpers.js';

/** Every child this module started and has not seen exit: killed if the test process exits. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A port free on 127.0.0.1 right now (the OS picks it; bind it soon). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A child process with its output kept (for failure messages) and its exit awaited. */
export interface Child {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<number | null>;
  output(): string;
  /** Signal it and wait for the exit; SIGKILL after `graceMs` if it is still there. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

export function startChild(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 64 * 1024) out = out.slice(-32 * 1024);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? (signal ? -1 : null));
    });
    child.once('error', (err) => {
      out += `\n${String(err)}`;
      live.delete(child);
      resolve(-2);
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    },
  };
}

/** Resolve once the child's output matches `re`; reject if it exits first or after `timeoutMs`. */
export async function waitForOutput(c: Child, re: RegExp, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!re.test(c.output())) {
    const exited = await Promise.race([c.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 25))]);
    if (exited && !re.test(c.output())) throw new Error(`${what} exited before it was ready:\n${c.output().slice(-4000)}`);
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${c.output().slice(-4000)}`);
  }
}

// --- Skiff ---------------------------------------------------------------------------------

export interface SkiffProcess extends Child {
  port: number;
  url: string;
  wsUrl: string;
}

/**
 * `node dist/src/cli.js <args>` (args start with `serve`), resolved once it printed `ready`. The
 * main port is read from what it printed (so `--port 0` works).
 */
export async function startSkiff(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; cli?: string; readyTimeoutMs?: number } = {}): Promise<SkiffProcess> {
  const c = startChild(process.execPath, [opts.cli ?? CLI, ...args], { cwd: opts.cwd, env: opts.env });
  try {
    await waitForOutput(c, /^ready$/m, opts.readyTimeoutMs ?? 120_000, `skiff ${args.join(' ')}`);
  } catch (err) {
    await c.stop('SIGKILL');
    throw err;
  }
  const m = /demo page +https?:\/\/[^\s:]+:(\d+)/.exec(c.output());
  if (!m) {
    await c.stop('SIGKILL');
    throw new Error(`skiff ${args.join(' ')}: no main port in what it printed:\n${c.output().slice(-2000)}`);
  }
  const port = Number(m[1]);
  return Object.assign(c, { port, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws` });
}

// --- Redis ---------------------------------------------------------------------------------

export interface RedisServer {
  port: number;
  url: string;
  /** The running process (a new one after restart()). */
  proc(): Child;
  /** Stop (SIGTERM: Redis writes what it must) and start again on the same port and directory. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** Append-only file with fsync on every write (what survives a restart); default: no persistence. */
  aof?: boolean;
}

export async function startRedis(dir: string, opts: RedisOptions = {}): Promise<RedisServer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes', '--daemonize', 'no',
    '--dir', dir, '--save', '', '--logfile', '',
    ...(opts.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
  ];
  let proc: Child;
  const launch = async (): Promise<void> => {
    proc = startChild('redis-server', args);
    try {
      await waitForOutput(proc, /Ready to accept connections/, 30_000, 'redis-server');
      const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await client.connect();
        if ((await client.ping()) !== 'PONG') throw new Error('redis-server did not answer PING');
      } finally {
        client.disconnect();
      }
    } catch (err) {
      await proc.stop('SIGKILL');
      throw err;
    }
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    proc: () => proc,
    async restart(signal: NodeJS.Signals = 'SIGTERM') {
      await proc.stop(signal);
      await launch();
    },
    async stop() {
      await proc.stop('SIGTERM', 5000);
    },
  };
}

// --- HAProxy -------------------------------------------------------------------------------

export interface Balancer {
  port: number;
  url: string;
  wsUrl: string;
  proc: Child;
  /** Each server's state as HAProxy's stats report it ("UP" once a check passed, "DOWN", "MAINT", ...), by name. */
  states(): Promise<Record<string, string>>;
  /** Wait until the named servers are in `state`. */
  waitFor(names: readonly string[], state: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface Backend {
  name: string;
  port: number;
}

export function haproxyConfig(o: { port: number; socket: string; backends: readonly Backend[] }): string {
  return `global
  maxconn 8192
  stats socket ${o.socket} mode 600 level admin

defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout http-keep-alive 10s
  # A refused connection is tried again elsewhere; a request that reached a server never is.
  retries 3
  retry-on conn-failure
  option redispatch 1

frontend skiff
  bind 127.0.0.1:${o.port}
  default_backend skiff

backend skiff
  balance roundrobin
  # HTTP/1.1 with a Host header: uWebSockets.js leaves HTTP/1.0 and Host-less requests unanswered.
  option httpchk
  http-check send meth GET uri /v2/health/ready ver HTTP/1.1 hdr Host localhost
  http-check expect status 200
  default-server inter 200ms fastinter 100ms downinter 500ms fall 2 rise 1 observe layer4 error-limit 1 on-error mark-down
${o.backends.map((b) => `  server ${b.name} 127.0.0.1:${b.port} check`).join('\n')}
`;
}

/** One command on HAProxy's stats socket; resolves with its whole answer. */
function statsCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let out = '';
    s.on('data', (d) => { out += d.toString(); });
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.write(`${command}\n`);
  });
}

export async function startHaproxy(dir: string, backends: readonly Backend[]): Promise<Balancer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const socket = join(dir, 'haproxy.sock');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig({ port, socket, backends }));
  const proc = startChild('haproxy', ['-f', cfg, '-db']);
  const states = async (): Promise<Record<string, string>> => {
    const csv = await statsCommand(socket, 'show stat');
    const [header, ...rows] = csv.trim().split('\n');
    const cols = header!.replace(/^# /, '').split(',');
    const sv = cols.indexOf('svname');
    const st = cols.indexOf('status');
    const ck = cols.indexOf('check_status');
    const out: Record<string, string> = {};
    for (const r of rows) {
      const f = r.split(',');
      if (f[0] !== 'skiff' || f[sv] === 'BACKEND' || f[sv] === 'FRONTEND') continue;
      // HAProxy assumes a server UP until its first check: UP counts once a check has passed.
      const status = f[st]!.split(' ')[0]!;
      out[f[sv]!] = status === 'UP' && f[ck]!.replace(/^\* /, '') !== 'L7OK' ? 'UP-UNCHECKED' : status;
    }
    return out;
  };
  const waitFor = async (names: readonly string[], state: string, timeoutMs = 30_000): Promise<void> => {
    const started = Date.now();
    let last: Record<string, string> = {};
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`haproxy exited:\n${proc.output()}`);
      try {
        last = await states();
        if (names.every((n) => last[n] === state)) return;
      } catch {
        // the socket is not there yet
      }
      if (Date.now() - started > timeoutMs) throw new Error(`haproxy: ${names.join(', ')} not ${state} after ${timeoutMs} ms: ${JSON.stringify(last)}\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    port, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`, proc, states, waitFor,
    async stop() {
      await proc.stop('SIGTERM', 5000);
    },
  };
}

// --- the cluster ---------------------------------------------------------------------------

export interface ClusterOptions {
  /** How many Skiff instances. */
  instances: number;
  /** The model repository every instance serves. */
  repository: string;
  /** Extra `skiff serve` arguments per instance (e.g. `--state <redis.url>` once that exists). */
  args?: (i: number, ctx: { redisUrl?: string }) => string[];
  /** Start a redis-server (default true). */
  redis?: boolean | RedisOptions;
  /** The admin token of every instance (default: a fixed test token). */
  adminToken?: string;
}

export interface Cluster {
  dir: string;
  redis?: RedisServer;
  balancer: Balancer;
  /** The instances by index; a killed one stays in the list (see `alive`). */
  instances: (SkiffProcess & { name: string; adminPort: number })[];
  adminToken: string;
  /** SIGKILL instance i and wait for its exit. */
  kill(i: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Start Redis, `instances` Skiff processes on free loopback ports and HAProxy in front, and wait
 * until HAProxy sees every instance ready. On any failure everything started so far is stopped.
 */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-cluster-'));
  const adminToken = o.adminToken ?? 'cluster-test-token';
  const started: { stop(): Promise<unknown> }[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.splice(0).reverse().map((s) => s.stop().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let redis: RedisServer | undefined;
    if (o.redis !== false) {
      redis = await startRedis(join(dir, 'redis'), typeof o.redis === 'object' ? o.redis : {});
      started.push(redis);
    }
    const instances: Cluster['instances'] = [];
    // Started one after the other: model loading is CPU-bound and the machine is small.
    for (let i = 0; i < o.instances; i++) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const p = await startSkiff([
        'serve', '--model-repository', o.repository, '--host', '127.0.0.1', '--port', String(port),
        '--admin-port', String(adminPort), '--admin-token', adminToken, '--log-level', 'warn',
        ...(o.args?.(i, { redisUrl: redis?.url }) ?? []),
      ], { env: { ...process.env, SKIFF_RUNTIME_DIR: join(dir, 'run') } });
      started.push(p);
      instances.push(Object.assign(p, { name: `s${i}`, adminPort }));
    }
    const balancer = await startHaproxy(join(dir, 'haproxy'), instances.map((p) => ({ name: p.name, port: p.port })));
    started.push(balancer);
    await balancer.waitFor(instances.map((p) => p.name), 'UP');
    return {
      dir, redis, balancer, instances, adminToken,
      async kill(i: number) {
        await instances[i]!.stop('SIGKILL');
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

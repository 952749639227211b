/**
 * Child processes for the servers under test (Skiff, the baselines) and for helpers (idle
 * connections): each runs in its own process so it never shares the generator's event loop.
 *
 * Protocol over the IPC channel: the child sends `{type:'ready', port?}` once listening (or
 * `{type:'failed', message}`); afterwards the parent may send `{id, op, ...args}` requests, which
 * the child answers with `{id, ok: true, value}` or `{id, ok: false, message}`.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ChildReady {
  type: 'ready';
  port?: number;
  [k: string]: unknown;
}

export interface ChildHandle {
  readonly ready: ChildReady;
  readonly pid: number;
  /** Send a request; resolves with the child's answer. */
  call<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>;
  /** Stop the child (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  args?: string[];
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long the child may take to become ready (default 60 s). */
  readyTimeoutMs?: number;
  /**
   * Open-files limit the child needs: it is started through `sh -c 'ulimit -n ...; exec node'`,
   * raising the soft limit to this (or as far as the hard limit allows).
   */
  fdLimit?: number;
}

function start(entry: URL, opts: SpawnOptions): ChildProcess {
  const file = fileURLToPath(entry);
  const stdio: ['ignore', 'inherit', 'inherit', 'ipc'] = ['ignore', 'inherit', 'inherit', 'ipc'];
  if (!opts.fdLimit) return fork(file, opts.args ?? [], { execArgv: opts.execArgv ?? [], env: opts.env ?? process.env, stdio });
  // The IPC channel's descriptor and NODE_CHANNEL_FD survive the exec.
  const n = Math.floor(opts.fdLimit);
  const script = `ulimit -n ${n} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  return spawn('/bin/sh', ['-c', script, process.execPath, ...(opts.execArgv ?? []), file, ...(opts.args ?? [])], { env: opts.env ?? process.env, stdio });
}

/** Fork `entry` (a compiled bench module URL) and wait for it to report ready. */
export function spawnChild(entry: URL, opts: SpawnOptions = {}): Promise<ChildHandle> {
  const child = start(entry, opts);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${entry.pathname}: not ready after ${opts.readyTimeoutMs ?? 60000} ms`));
    }, opts.readyTimeoutMs ?? 60_000);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`${entry.pathname} exited (code ${code}) before it was ready`));
    };
    child.once('exit', onExit);
    child.once('message', (m: ChildReady | { type: 'failed'; message: string }) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      if (m.type !== 'ready') {
        child.kill('SIGKILL');
        reject(new Error(`${entry.pathname}: ${(m as { message: string }).message}`));
        return;
      }
      resolve(handle(child, m));
    });
  });
}

function handle(child: ChildProcess, ready: ChildReady): ChildHandle {
  let nextId = 1;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on('message', (m: { id?: number; ok?: boolean; value?: unknown; message?: string }) => {
    const w = m.id !== undefined ? waiting.get(m.id) : undefined;
    if (!w) return;
    waiting.delete(m.id!);
    if (m.ok) w.resolve(m.value);
    else w.reject(new Error(m.message ?? 'child request failed'));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    for (const w of waiting.values()) w.reject(new Error('child exited'));
    waiting.clear();
    resolve();
  }));
  return {
    ready,
    pid: child.pid!,
    call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, op, ...args });
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * Child side: answer the parent's requests with `handlers[op](args)`. Stops serving when the
 * parent goes away (the channel closes) by calling `onDisconnect`.
 */
export function serveParent(handlers: Record<string, (args: Record<string, unknown>) => unknown>, onDisconnect: () => void): void {
  process.on('message', (m: { id: number; op: string } & Record<string, unknown>) => {
    const h = handlers[m.op];
    Promise.resolve()
      .then(() => {
        if (!h) throw new Error(`unknown op ${m.op}`);
        return h(m);
      })
      .then(
        (value) => process.send!({ id: m.id, ok: true, value }),
        (err: unknown) => process.send!({ id: m.id, ok: false, message: err instanceof Error ? err.message : String(err) }),
      );
  });
  process.on('disconnect', onDisconnect);
  process.on('SIGTERM', onDisconnect);
}

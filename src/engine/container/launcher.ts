import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { commandPath, type ContainerDescription } from '../../config/container-config.js';
import type { ContainerProcesses } from './container-runner.js';

/**
 * Launches and supervises the processes of one container-backed model version (no Docker):
 * `replicas` processes of the description's command, each with the CLIPPER_* environment a
 * Clipper container expects and its own private RPC endpoint (so a connection tells which
 * process it is). A process that exits is restarted with exponential backoff (reset after a
 * stable run); `stop()` sends SIGTERM, then SIGKILL after a grace period. stdout and stderr go to
 * the log line by line, labelled with model, version and replica (lines bounded, rate-limited).
 *
 * Skiff's Python library (`python/skiff`) is on their PYTHONPATH. Children die with the server: they are started under `setpriv --pdeathsig KILL` where it exists
 * (util-linux), and SKIFF_PARENT_PID lets Skiff's own Python library exit on its own as well.
 * Main thread only.
 */
export interface LauncherOptions {
  model: string;
  version: number;
  description: ContainerDescription;
  /** The version directory (CLIPPER_MODEL_PATH). */
  modelPath: string;
  replicas: number;
  /** Where the container connects (the RPC server's host). */
  rpcHost: string;
  /** Open a private RPC endpoint for one replica; its connections carry `tag`. */
  openEndpoint(tag: string): Promise<{ port: number; ipc?: string; close(): void }>;
  log: Logger;
  /** Backoff of restarts (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** SIGTERM -> SIGKILL grace (ms). */
  stopGraceMs?: number;
}

const STABLE_RUN_MS = 10_000;
const MAX_LINE = 4096;
/** Lines per replica per second before output is summarised. */
const LINES_PER_SECOND = 50;
const SETPRIV = '/usr/bin/setpriv';
const PYTHON_LIB = fileURLToPath(new URL('../../../../python', import.meta.url));

interface Slot {
  index: number;
  tag: string;
  child: ChildProcess | null;
  endpoint: { port: number; ipc?: string; close(): void } | null;
  /** Desired: false once the slot is being stopped for good. */
  wanted: boolean;
  backoffMs: number;
  startedAt: number;
  restartTimer: NodeJS.Timeout | null;
  exited: Promise<void>;
  lines: { second: number; count: number; dropped: number };
}

export class Launcher implements ContainerProcesses {
  private readonly slots: Slot[] = [];
  private restartCount = 0;
  private stopped = false;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;

  constructor(private readonly opts: LauncherOptions) {
    this.minBackoff = opts.minBackoffMs ?? 250;
    this.maxBackoff = opts.maxBackoffMs ?? 30_000;
    this.setReplicas(opts.replicas);
  }

  get running(): number {
    return this.slots.filter((s) => s.child && s.child.exitCode === null && s.child.signalCode === null).length;
  }

  get restarts(): number {
    return this.restartCount;
  }

  /** Process ids now running (tests, diagnostics). */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid !== undefined && s.child.exitCode === null && s.child.signalCode === null ? [s.child.pid] : []));
  }

  setReplicas(n: number): void {
    if (this.stopped) return;
    while (this.slots.filter((s) => s.wanted).length < n) {
      const index = this.slots.length;
      const slot: Slot = {
        index, tag: `${this.opts.model}:${this.opts.version}#${index}`, child: null, endpoint: null, wanted: true,
        backoffMs: this.minBackoff, startedAt: 0, restartTimer: null, exited: Promise.resolve(), lines: { second: 0, count: 0, dropped: 0 },
      };
      this.slots.push(slot);
      void this.start(slot);
    }
    const live = this.slots.filter((s) => s.wanted);
    for (const s of live.slice(n)) void this.retire(s);
  }

  /** Restart the process behind a connection tag (its container hung). */
  restart(tag: string): void {
    const s = this.slots.find((x) => x.tag === tag && x.wanted);
    if (!s?.child) return;
    this.opts.log.warn({ model: this.opts.model, version: this.opts.version, replica: s.index }, 'restarting a hung container');
    s.child.kill('SIGKILL');
  }

  private async start(slot: Slot): Promise<void> {
    if (!slot.wanted || this.stopped) return;
    const { model, version, description: d, log } = this.opts;
    try {
      slot.endpoint ??= await this.opts.openEndpoint(slot.tag);
    } catch (err) {
      log.error({ model, version, replica: slot.index, err: (err as Error).message }, 'cannot open a container endpoint');
      this.scheduleRestart(slot);
      return;
    }
    if (!slot.wanted || this.stopped) return;
    const inherited = filteredEnv(process.env);
    const env: Record<string, string> = {
      ...inherited,
      ...d.env,
      // Skiff's own Python library (skiff.container) is importable by every process it launches.
      PYTHONPATH: [d.env.PYTHONPATH ?? inherited.PYTHONPATH, PYTHON_LIB].filter(Boolean).join(delimiter),
      CLIPPER_MODEL_NAME: model,
      CLIPPER_MODEL_VERSION: String(version),
      CLIPPER_MODEL_PATH: this.opts.modelPath,
      CLIPPER_IP: this.opts.rpcHost,
      CLIPPER_PORT: String(slot.endpoint.port),
      CLIPPER_INPUT_TYPE: d.input_type,
      ...(slot.endpoint.ipc ? { SKIFF_RPC_ADDRESS: slot.endpoint.ipc } : {}),
      SKIFF_PARENT_PID: String(process.pid),
      SKIFF_REPLICA: String(slot.index),
    };
    const program = commandPath(d);
    const [file, args] = existsSync(SETPRIV)
      ? [SETPRIV, ['--pdeathsig', 'KILL', '--', program, ...d.command.slice(1)]]
      : [program, d.command.slice(1)];
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: d.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      log.error({ model, version, replica: slot.index, err: (err as Error).message }, 'cannot start a container process');
      this.scheduleRestart(slot);
      return;
    }
    slot.child = child;
    slot.startedAt = Date.now();
    slot.exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    this.pipe(slot, child.stdout!, 'stdout');
    this.pipe(slot, child.stderr!, 'stderr');
    child.once('error', (err) => log.error({ model, version, replica: slot.index, err: err.message }, 'container process error'));
    child.once('exit', (code, signal) => {
      if (slot.child !== child) return;
      slot.child = null;
      if (!slot.wanted || this.stopped) return;
      log.warn({ model, version, replica: slot.index, code, signal }, 'container process exited; restarting');
      if (Date.now() - slot.startedAt > STABLE_RUN_MS) slot.backoffMs = this.minBackoff;
      this.scheduleRestart(slot);
    });
    log.info({ model, version, replica: slot.index, pid: child.pid, port: slot.endpoint.port }, 'container process started');
  }

  private scheduleRestart(slot: Slot): void {
    if (!slot.wanted || this.stopped || slot.restartTimer) return;
    const delay = slot.backoffMs;
    slot.backoffMs = Math.min(this.maxBackoff, slot.backoffMs * 2);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      this.restartCount++;
      void this.start(slot);
    }, delay);
    slot.restartTimer.unref();
  }

  private pipe(slot: Slot, stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr'): void {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    const { model, version, log } = this.opts;
    rl.on('line', (line: string) => {
      const sec = Math.floor(Date.now() / 1000);
      const l = slot.lines;
      if (sec !== l.second) {
        if (l.dropped > 0) log.info({ model, version, replica: slot.index, stream: name }, `(${l.dropped} more lines of container output in the last second were not logged)`);
        l.second = sec;
        l.count = 0;
        l.dropped = 0;
      }
      if (++l.count > LINES_PER_SECOND) {
        l.dropped++;
        return;
      }
      log.info({ model, version, replica: slot.index, stream: name }, line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line);
    });
  }

  /** Stop one slot for good: SIGTERM, then SIGKILL after the grace period. */
  private async retire(slot: Slot): Promise<void> {
    slot.wanted = false;
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = null;
    const child = slot.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const grace = setTimeout(() => child.kill('SIGKILL'), this.opts.stopGraceMs ?? 2000);
      grace.unref();
      await slot.exited;
      clearTimeout(grace);
    }
    slot.endpoint?.close();
    slot.endpoint = null;
  }

  /** Stop every process; resolves when all have exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.slots.map((s) => this.retire(s)));
  }
}

/** The server's environment minus what a container must not inherit (Skiff's own secrets and settings). */
function filteredEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || k.startsWith('SKIFF_') || k.startsWith('CLIPPER_')) continue;
    out[k] = v;
  }
  return out;
}

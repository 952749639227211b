import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import { SkiffError } from '../../errors.js';
import { commandPath, type ContainerDescription } from '../../config/container-config.js';
import type { ContainerHub, ContainerProcesses } from './container-runner.js';
import { Launcher } from './launcher.js';
import { RpcServer } from './rpc-server.js';

/**
 * What container-backed model versions need: the RPC server containers connect to, and launched
 * processes. The RPC server starts at once when the operator asked for a port (`--rpc-port`, on
 * `--rpc-host`, loopback by default), or on demand on a free loopback port the first time a
 * version launches its own containers. External containers (Clipper's admin flow) need the
 * explicit port: nobody else would know where to connect.
 */
export interface ContainerServiceOptions {
  host: string;
  /** undefined: no RPC port until a launched version needs one (loopback, free port). */
  port?: number;
  log: Logger;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
}

const PROBE_TIMEOUT_MS = 30_000;

export class ContainerServices {
  private server: Promise<RpcServer> | null = null;
  private started: RpcServer | null = null;

  constructor(private readonly opts: ContainerServiceOptions) {}

  /** Start the RPC server now (an explicit --rpc-port). */
  async start(): Promise<RpcServer> {
    this.server ??= RpcServer.start({
      host: this.opts.port === undefined ? '127.0.0.1' : this.opts.host,
      port: this.opts.port ?? 0,
      log: this.opts.log,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.opts.heartbeatTimeoutMs,
    }).then((s) => {
      this.started = s;
      this.opts.log.info({ host: s.host, port: s.port }, 'container RPC listening');
      return s;
    });
    return this.server;
  }

  /** The RPC server if it runs. */
  get rpc(): RpcServer | null {
    return this.started;
  }

  /** The hub a version attaches to: external containers need the explicit port. */
  async hub(launched: boolean): Promise<ContainerHub> {
    if (!launched && this.opts.port === undefined && !this.server) {
      throw new SkiffError('MODEL_LOAD_FAILED', 'a version served by external containers needs the container RPC port: start the server with --rpc-port');
    }
    return this.start();
  }

  /** Probe, then launch the processes of a version. */
  async launch(model: string, version: number, description: ContainerDescription, modelPath: string, replicas: number): Promise<ContainerProcesses> {
    if (description.probe) await probe(model, description);
    const rpc = await this.start();
    return new Launcher({
      model, version, description, modelPath, replicas, rpcHost: '127.0.0.1',
      openEndpoint: (tag) => rpc.openEndpoint(tag),
      log: this.opts.log,
    });
  }

  async close(): Promise<void> {
    const s = this.started ?? (this.server ? await this.server.catch(() => null) : null);
    await s?.close();
  }
}

/** Run a description's probe command; a failure says why in one line. */
function probe(model: string, d: ContainerDescription): Promise<void> {
  const argv = d.probe!;
  return new Promise((resolve, reject) => {
    execFile(commandPath(d, argv), argv.slice(1), { cwd: d.cwd, timeout: PROBE_TIMEOUT_MS, env: { ...process.env, ...d.env } }, (err, _out, stderr) => {
      if (!err) return resolve();
      const last = String(stderr).trim().split('\n').pop()?.slice(0, 300) || err.message;
      reject(new SkiffError('MODEL_LOAD_FAILED', `model '${model}': its container probe (${argv.join(' ').slice(0, 200)}) failed: ${last}`));
    });
  });
}

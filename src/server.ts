import { existsSync, readFileSync } from 'node:fs';
import uWS from 'uWebSockets.js';
import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import { toErrorInfo } from './errors.js';
import { createLogger } from './log.js';
import { ModelRegistry, type LoadReport } from './models/registry.js';
import { QueryProcessor } from './selection/query-processor.js';
import { registerOipRoutes } from './frontend/oip.js';
import { registerWsRoute } from './frontend/ws.js';
import { registerClipperRoutes } from './frontend/clipper.js';
import { exchange, sendError } from './http/exchange.js';
import { AppRegistry } from './selection/apps.js';
import { AppProcessor } from './selection/app-processor.js';
import { applicationCalls, startAdminServer, type AdminServer } from './admin/server.js';
import { modelCalls, repositoryRoutes } from './admin/models.js';
import type { ControlStore, StoredModelVersion } from './store/types.js';
import { containerVersionFile, versionFileIn, type VersionFile } from './models/repository.js';
import { parseInputType } from './engine/container/rpc-codec.js';
import { MemoryControlStore } from './store/memory-store.js';
import { openSqliteStore } from './store/sqlite-store.js';
import { parseModelConfig } from './config/model-config.js';
import { dirname, join } from 'node:path';
import { parseJsonBody } from './protocol/safe-json.js';
import { startObservability } from './metrics/observability.js';
import { registerMetricsRoutes } from './frontend/metrics.js';
import { registerDashboard } from './admin/dashboard.js';
import { ContainerServices } from './engine/container/services.js';

/**
 * The composition root: the only module that wires the layers together. Everything below it is
 * constructed here and receives its collaborators explicitly.
 */
export interface ServerOptions {
  modelRepository?: string;
  host: string;
  /** 0 = an ephemeral port (see SkiffServer.port). */
  port: number;
  maxBodyBytes: number;
  maxFrameBytes: number;
  /** Largest element count of one input tensor accepted over REST. */
  maxElements: number;
  wsPath: string;
  wsIdleTimeoutSec: number;
  /** JSON file with application definitions loaded at start-up: an array, or {"apps": [...]}. */
  appsFile?: string;
  /**
   * Models the apps file may link that are left out of the links when they did not load (the
   * demo's Python container where Python with zmq, numpy and scikit-learn is absent).
   */
  optionalModels?: readonly string[];
  adminHost: string;
  /** 0 = ephemeral; -1 = no admin listener. */
  adminPort: number;
  adminToken?: string;
  /** SQLite file holding the control plane and selection state; none = in memory only. */
  stateDb?: string;
  /** How often selection state is flushed to the state database (ms). */
  flushIntervalMs: number;
  /** Where add_model writes uploaded model bytes (default <repository>/.uploads). */
  uploadDir?: string;
  /** Graceful shutdown: how long in-flight queries may take to finish (ms). */
  drainTimeoutMs: number;
  /** TLS for the main listener (PEM key and certificate paths). */
  tls?: TlsFiles;
  /** TLS for the admin listener (default: the main listener's). */
  adminTls?: TlsFiles;
  /** Unsent WebSocket replies allowed per connection before it is closed as a slow reader. */
  wsMaxPendingBytes: number;
  /**
   * The container RPC port (Clipper's protocol; 0 = a free port). Undefined: none, unless a
   * version in the repository launches its own containers (then a free loopback port).
   */
  rpcPort?: number;
  /** Address of the container RPC port (loopback by default: whatever connects runs answers). */
  rpcHost: string;
  logger?: Logger;
  clock?: Clock;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, 'modelRepository' | 'appsFile' | 'adminToken' | 'stateDb' | 'uploadDir' | 'tls' | 'adminTls' | 'rpcPort'> = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  maxBodyBytes: 64 * 1024 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  maxElements: 16 * 1024 * 1024,
  wsPath: '/ws',
  wsIdleTimeoutSec: 120,
  adminHost: '127.0.0.1',
  adminPort: 8001,
  flushIntervalMs: 1000,
  drainTimeoutMs: 10_000,
  wsMaxPendingBytes: 64 * 1024 * 1024,
  rpcHost: '127.0.0.1',
});

export interface SkiffServer {
  readonly port: number;
  readonly host: string;
  readonly registry: ModelRegistry;
  readonly queries: QueryProcessor;
  readonly apps: AppRegistry;
  readonly appQueries: AppProcessor;
  /** The admin listener's port (undefined when disabled). */
  readonly adminPort?: number;
  readonly loadReport: LoadReport;
  readonly store: ControlStore;
  readonly log: Logger;
  /** Model containers: the RPC server (`containers.rpc`, once started) and launched processes. */
  readonly containers: ContainerServices;
  /** Open WebSocket connections and slow-reader closes so far. */
  wsStats(): { connections: number; slowReaderCloses: number };
  /**
   * Graceful stop: stop accepting (both listeners), let queued and running queries finish (up
   * to drainTimeoutMs), flush state, stop all workers, close connections.
   */
  close(): Promise<void>;
}

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function assertNativeUws(): void {
  if (!/\[native code\]/.test(String(uWS.App))) {
    throw new Error('uWebSockets.js native binary did not load (unsupported Node version or platform); refusing to run on its slow fallback');
  }
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('Skiff requires a little-endian machine');
}

export interface TlsFiles {
  key: string;
  cert: string;
}

/** A uWS app, plain or TLS; the key and certificate are checked before uWS sees them. */
export function createUwsApp(tls?: TlsFiles): uWS.TemplatedApp {
  if (!tls) return uWS.App();
  for (const f of [tls.key, tls.cert]) {
    if (!existsSync(f)) throw new Error(`TLS file ${f} does not exist`);
  }
  return uWS.SSLApp({ key_file_name: tls.key, cert_file_name: tls.cert });
}

export async function startServer(partial: Partial<ServerOptions> = {}): Promise<SkiffServer> {
  assertNativeUws();
  const opts: ServerOptions = { ...DEFAULT_SERVER_OPTIONS, ...partial };
  const log = opts.logger ?? createLogger();
  const clock = opts.clock ?? systemClock;
  const store: ControlStore = opts.stateDb ? openSqliteStore(opts.stateDb, { flushIntervalMs: opts.flushIntervalMs }) : new MemoryControlStore();
  const containers = new ContainerServices({ host: opts.rpcHost, port: opts.rpcPort, log });
  if (opts.rpcPort !== undefined) await containers.start();
  const registry = new ModelRegistry(clock, log, containers);
  const loadReport: LoadReport = opts.modelRepository ? await registry.loadRepository(opts.modelRepository) : { loaded: [], failed: [] };
  await restoreModels(registry, store, loadReport, log);
  const queries = new QueryProcessor(registry, clock);
  const apps = new AppRegistry(store);
  const missing = (opts.optionalModels ?? []).filter((m) => !registry.has(m) || registry.list().find((x) => x.name === m)?.current === undefined);
  restoreApps(apps, store, opts.appsFile, missing);
  const appQueries = new AppProcessor(apps, registry, queries, clock);

  const app = createUwsApp(opts.tls);
  const ws = registerWsRoute(app, queries, appQueries, log, {
    path: opts.wsPath,
    maxFrameBytes: opts.maxFrameBytes,
    idleTimeoutSec: opts.wsIdleTimeoutSec,
    highWaterBytes: 1024 * 1024,
    maxPendingBytes: opts.wsMaxPendingBytes,
    maxResponsesPerFrame: 1024,
  });
  registerOipRoutes(app, registry, queries, {
    maxBodyBytes: opts.maxBodyBytes,
    maxElements: opts.maxElements,
    serverName: 'skiff',
    serverVersion: PKG.version,
    log,
  });
  registerClipperRoutes(app, apps, appQueries, { maxBodyBytes: opts.maxBodyBytes, maxBatch: 10_000 });
  const obs = startObservability({
    models: registry, apps, appStats: appQueries, rejected: queries.rejected,
    connections: () => ws.connections(), toWallMs: (t) => Date.now() - (clock.now() - t),
  }, log);
  registerMetricsRoutes(app, obs);
  app.any('/*', (res, req) => {
    const ex = exchange(res);
    sendError(ex, { code: 'NOT_FOUND', message: `no route for ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
  });

  const token = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(opts.host, opts.port, (t) => (t ? resolve(t) : reject(new Error(`cannot listen on ${opts.host}:${opts.port}`))));
  });
  const port = uWS.us_socket_local_port(token);
  const uploadDir = opts.uploadDir ?? join(opts.modelRepository ?? '.', '.uploads');
  let admin: AdminServer | undefined;
  if (opts.adminPort >= 0) {
    admin = await startAdminServer(
      { host: opts.adminHost, port: opts.adminPort, token: opts.adminToken, maxBodyBytes: opts.maxBodyBytes, log, tls: opts.adminTls ?? opts.tls },
      { ...applicationCalls(apps, store), ...modelCalls(registry, store, { repository: opts.modelRepository, uploadDir }) },
      repositoryRoutes(registry, { repository: opts.modelRepository, uploadDir }),
      (adminApp, authorized) => registerDashboard(adminApp, authorized, obs),
    );
  }
  log.info({ host: opts.host, port, loaded: loadReport.loaded, failed: loadReport.failed.length }, 'skiff listening');

  let closing: Promise<void> | null = null;
  return {
    port,
    host: opts.host,
    registry,
    queries,
    apps,
    appQueries,
    adminPort: admin?.port,
    loadReport,
    store,
    containers,
    wsStats: () => ({ connections: ws.connections(), slowReaderCloses: ws.slowReaderCloses() }),
    log,
    close() {
      closing ??= (async () => {
        uWS.us_listen_socket_close(token);
        admin?.close();
        obs.close();
        // Accepted queries finish; new ones on open connections get SHUTTING_DOWN.
        queries.draining = true;
        const drained = await Promise.race([
          registry.drainAll().then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), opts.drainTimeoutMs).unref()),
        ]);
        if (!drained) log.warn({ timeoutMs: opts.drainTimeoutMs }, 'drain timeout: unloading with queries still in flight');
        // Let the last answers (and SHUTTING_DOWN refusals) leave before the connections close.
        await new Promise((r) => setTimeout(r, Math.min(250, opts.drainTimeoutMs)));
        try {
          await registry.close();
        } catch (err) {
          log.error({ err: toErrorInfo(err) }, 'error while unloading models');
        }
        ws.closeAll();
        await containers.close();
        try {
          store.close();
        } catch (err) {
          log.error({ err: toErrorInfo(err) }, 'error while closing the state store');
        }
        log.info('skiff stopped');
      })();
      return closing;
    },
  };
}

/**
 * Applications at start-up: the persisted ones when the store has any (they are the last
 * acknowledged state), otherwise the apps file, which is then persisted.
 */
export function restoreApps(apps: AppRegistry, store: ControlStore, file?: string, leaveOut: readonly string[] = []): void {
  const stored = store.listApps();
  if (stored.length > 0) {
    for (const a of stored) apps.add(a);
    return;
  }
  if (!file) return;
  const raw = parseJsonBody(readFileSync(file));
  const list = Array.isArray(raw) ? raw : (raw as { apps?: unknown }).apps;
  if (!Array.isArray(list)) throw new Error(`${file}: expected an array of applications or {"apps": [...]}`);
  for (const a of list) {
    const def = leaveOut.length && a && typeof a === 'object' && Array.isArray((a as { models?: unknown }).models)
      ? { ...a, models: ((a as { models: unknown[] }).models).filter((m) => !leaveOut.includes(String(m))) }
      : a;
    store.putApp({ ...apps.add(def) } as Record<string, unknown> & { name: string });
  }
}

/** Models added through the admin API, pinned versions and replica counts, as last acknowledged. */
export async function restoreModels(registry: ModelRegistry, store: ControlStore, report: LoadReport, log: Logger): Promise<void> {
  const listed = new Map(registry.list().map((m) => [m.name, m]));
  for (const sv of store.listModelVersions()) {
    const known = listed.get(sv.model)?.versions.find((v) => v.version === sv.version);
    if (known && known.file.path === sv.path && known.state !== 'unloaded') continue;
    try {
      const v = await registry.loadVersion(sv.model, storedVersionFile(sv), parseModelConfig(sv.model, sv.config));
      if (v.state === 'ready') report.loaded.push(`${sv.model}:${sv.version}`);
      else report.failed.push({ model: sv.model, version: sv.version, error: { code: 'MODEL_LOAD_FAILED', message: v.reason ?? 'load failed' } });
    } catch (err) {
      report.failed.push({ model: sv.model, version: sv.version, error: toErrorInfo(err, 'MODEL_LOAD_FAILED') });
    }
  }
  for (const [model, replicas] of Object.entries(store.replicas())) {
    if (registry.has(model)) await registry.setReplicas(model, replicas).catch((err: unknown) => log.error({ model, err: toErrorInfo(err) }, 'cannot restore replicas'));
  }
  for (const [model, version] of Object.entries(store.currentVersions())) {
    if (registry.has(model)) await registry.setCurrent(model, version).catch((err: unknown) => log.error({ model, version, err: toErrorInfo(err) }, 'cannot restore the current version'));
  }
}

/** A stored version as the registry loads it (container versions: their description or input type). */
function storedVersionFile(sv: StoredModelVersion): VersionFile {
  if (sv.kind !== 'container') return { version: sv.version, path: sv.path, kind: sv.kind };
  if (sv.path) {
    const f = versionFileIn(sv.model, dirname(sv.path), sv.version);
    if (f) return f;
  }
  const inputType = parseInputType(String(sv.meta?.input_type ?? 'doubles')) ?? 'doubles';
  const name = typeof sv.meta?.container_name === 'string' ? sv.meta.container_name : undefined;
  return containerVersionFile(sv.version, { input_type: inputType, ...(name ? { container_name: name } : {}) });
}

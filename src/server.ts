import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { homedir, tmpdir } from 'node:os';
import { allowedHosts, isLoopback, parseOrigins, type BrowserPolicy } from './http/guard.js';
import { behindBrowserCheck } from './http/browser-check.js';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import uWS, { assertNativeUws } from './http/uws.js';
import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import { setErrorDetailSink, setPrivatePaths, SkiffError, toErrorInfo } from './errors.js';
import { createLogger } from './log.js';
import { ModelRegistry, type LoadReport } from './models/registry.js';
import { DEFAULT_MAX_TIMEOUT_MS, QueryProcessor } from './selection/query-processor.js';
import { registerOipRoutes } from './frontend/oip.js';
import { registerWsRoute } from './frontend/ws.js';
import { registerClipperRoutes } from './frontend/clipper.js';
import { exchange, sendError, type BodyLimits } from './http/exchange.js';
import { ByteBudget } from './budget.js';
import { AppRegistry } from './selection/apps.js';
import { parseApp } from './selection/app.js';
import { AppProcessor } from './selection/app-processor.js';
import { applicationCalls, registerGuardedRoutes, startAdminServer, type AdminHandler, type AdminRoute, type AdminServer } from './admin/server.js';
import { modelCalls, repositoryRoutes } from './admin/models.js';
import type { ControlStore, StoredModelVersion } from './store/types.js';
import { containerVersionFile, openModelDirectory, versionFileIn, type RepositoryModel, type VersionFile } from './models/repository.js';
import { parseInputType } from './engine/container/rpc-codec.js';
import { MemoryControlStore } from './store/memory-store.js';
import { openSqliteStore } from './store/sqlite-store.js';
import { followControl, storedVersionFile } from './control/follow.js';
import { DEFAULT_MAX_USER_STATES } from './store/state-cache.js';
import { parseModelConfig } from './config/model-config.js';
import { dirname, join, resolve } from 'node:path';
import { listenExclusive } from './http/listen.js';
import { parseJsonBody } from './protocol/safe-json.js';
import { startObservability } from './metrics/observability.js';
import { registerSiteRoutes } from './frontend/site.js';
import { registerMetricsRoutes } from './frontend/metrics.js';
import { allowedMethods } from './frontend/method-check.js';
import { registerDashboard } from './admin/dashboard.js';
import { ContainerServices } from './engine/container/services.js';

/**
 * The composition root: the only module that wires the layers together. Everything below it is
 * constructed here and receives its collaborators explicitly.
 */
export interface ServerOptions {
  modelRepository?: string;
  /**
   * A directory holding one model, served as `name` (KServe's /mnt/models; see
   * openModelDirectory for the layouts). Instead of modelRepository; a directory laid out as a
   * whole repository is served as one. Unlike a repository, a model that does not load fails the start.
   */
  modelDir?: { dir: string; name: string };
  host: string;
  /** 0 = an ephemeral port (see SkiffServer.port). */
  port: number;
  /** HTTP body limit of the query routes; undefined: sized to what the loaded models take (bodyLimitFor). */
  maxBodyBytes?: number;
  /** The longest deadline a query may ask for (ms); longer ones are clamped, absurd ones refused. */
  maxTimeoutMs: number;
  /** The global budget of request bytes in flight (bodies being read, inputs of unanswered queries). */
  maxInflightBytes: number;
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
  /** The admin API's bearer token; undefined: generate one at start (written to a file); false: none (trusted loopback only). */
  adminToken?: string | false;
  /** Where a generated admin token is written (default $XDG_RUNTIME_DIR/skiff or ~/.skiff). */
  tokenDir?: string;
  /** Browser origins allowed to call either listener and open the WebSocket, besides same-origin pages (each value may be a comma list). */
  allowOrigins?: string[];
  /** Host names the listeners answer to (admin: always; main port: browser requests) besides the ones they are bound to. */
  allowHosts?: string[];
  /** Accept executable model code (JS modules) uploaded through the admin API. Off by default. */
  allowCodeUpload?: boolean;
  /** SQLite file holding the control plane and selection state; none = in memory only. */
  stateDb?: string;
  /**
   * A shared state store instead of stateDb: `redis://[:password@]host:port/db` (or rediss://).
   * Several instances given the same URL share applications, links, model versions, replicas and
   * what the selection policies learn (src/store/redis-store.ts has the consistency model).
   */
  state?: string;
  /** How often selection state is flushed to the state database (ms). */
  flushIntervalMs: number;
  /** Per-user selection states kept in memory (LRU); the state database keeps the rest. */
  maxUserStates: number;
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
  /**
   * The demo page at `/` and its read-only `/site/...` routes (on by default). Off: `/` answers
   * 404 like any unknown path; the browser client bundle (`/client/skiff.js`) is served either way.
   */
  demoPage: boolean;
  logger?: Logger;
  clock?: Clock;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, 'modelRepository' | 'maxBodyBytes' | 'appsFile' | 'adminToken' | 'tokenDir' | 'allowOrigins' | 'allowHosts' | 'allowCodeUpload' | 'stateDb' | 'state' | 'uploadDir' | 'tls' | 'adminTls' | 'rpcPort'> = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  maxInflightBytes: 256 * 1024 * 1024,
  maxTimeoutMs: DEFAULT_MAX_TIMEOUT_MS,
  maxFrameBytes: 16 * 1024 * 1024,
  maxElements: 16 * 1024 * 1024,
  wsPath: '/ws',
  wsIdleTimeoutSec: 120,
  adminHost: '127.0.0.1',
  adminPort: 8001,
  flushIntervalMs: 1000,
  maxUserStates: DEFAULT_MAX_USER_STATES,
  drainTimeoutMs: 10_000,
  wsMaxPendingBytes: 64 * 1024 * 1024,
  rpcHost: '127.0.0.1',
  demoPage: true,
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
  /** The admin token (generated at start unless given or turned off). */
  readonly adminToken?: string;
  /** Where a generated token was written (readable by the user only). */
  readonly adminTokenFile?: string;
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
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export { assertNativeUws } from './http/uws.js';

export interface TlsFiles {
  key: string;
  cert: string;
}

/** A uWS app, plain or TLS; the key and certificate are checked before uWS sees them. */
export function createUwsApp(tls?: TlsFiles): TemplatedApp {
  if (!tls) return uWS.App();
  for (const f of [tls.key, tls.cert]) {
    if (!existsSync(f)) throw new Error(`TLS file ${f} does not exist`);
  }
  return uWS.SSLApp({ key_file_name: tls.key, cert_file_name: tls.cert });
}

export async function startServer(partial: Partial<ServerOptions> = {}): Promise<SkiffServer> {
  assertNativeUws();
  const opts: ServerOptions = { ...DEFAULT_SERVER_OPTIONS, ...partial };
  if (opts.adminToken === '') throw new SkiffError('CONFIG_INVALID', 'the admin token is empty: give one, leave it out to have one generated, or turn it off (--no-admin-token)');
  if (opts.adminToken === false && opts.adminPort >= 0 && !isLoopback(opts.adminHost)) {
    throw new SkiffError('CONFIG_INVALID', `no admin token (--no-admin-token) is for a trusted loopback only, and the admin listener is on ${opts.adminHost} (--admin-host)`);
  }
  const log = opts.logger ?? createLogger();
  const clock = opts.clock ?? systemClock;
  // One model directory (a platform's mount) is a single model, or a repository to serve as one.
  let single: RepositoryModel | undefined;
  if (opts.modelDir) {
    if (opts.modelRepository) throw new SkiffError('CONFIG_INVALID', 'give a model repository or a model directory, not both');
    const found = openModelDirectory(opts.modelDir.dir, opts.modelDir.name);
    if (found.layout === 'repository') opts.modelRepository = opts.modelDir.dir;
    else single = found.model;
    log.info({ dir: opts.modelDir.dir, layout: found.layout, model: single?.name }, 'model directory');
  }
  // Client-facing errors never show the server's own paths; what they hide goes to the log.
  setPrivatePaths([PACKAGE_ROOT, process.cwd(), homedir(), tmpdir(), opts.modelRepository, opts.modelDir?.dir, opts.uploadDir, opts.stateDb && dirname(opts.stateDb)].filter((p): p is string => !!p).map((p) => resolve(p)));
  setErrorDetailSink((ref, err) => log.warn({ ref, code: err.code, detail: err.message }, 'error detail hidden from the client'));
  if (opts.state !== undefined && opts.stateDb !== undefined) throw new SkiffError('CONFIG_INVALID', 'give --state or --state-db, not both');
  if (opts.state !== undefined && !/^rediss?:\/\//.test(opts.state)) throw new SkiffError('CONFIG_INVALID', '--state takes a Redis URL: redis://host:port/db');
  // Loaded only when asked for: a single instance never loads the Redis client.
  const shared = opts.state === undefined ? undefined : await (await import('./store/redis-store.js')).openRedisStore(opts.state, {
    maxUserStates: opts.maxUserStates,
    onStatus: (up) => (up ? log.info('shared state store (Redis) reachable again: catching up') : log.error('shared state store (Redis) unreachable: serving with the last state, admin changes and feedback refused (503)')),
  });
  const store: ControlStore = shared
    ?? (opts.stateDb
      ? openSqliteStore(opts.stateDb, { flushIntervalMs: opts.flushIntervalMs, maxUserStates: opts.maxUserStates })
      : new MemoryControlStore(opts.maxUserStates));
  const containers = new ContainerServices({ host: opts.rpcHost, port: opts.rpcPort, log });
  if (opts.rpcPort !== undefined) await containers.start();
  const registry = new ModelRegistry(clock, log, containers);
  const loadReport: LoadReport = opts.modelRepository ? await registry.loadRepository(opts.modelRepository, store.removed()) : { loaded: [], failed: [] };
  if (single) {
    await registry.loadModelFromRepository(single.dir, single.name, loadReport, single);
    const failed = loadReport.failed[0];
    if (failed) {
      // The one model this server is for did not load: refuse to start (a platform restarts the pod
      // and shows why) rather than serve nothing while reporting live.
      await registry.close().catch(() => undefined);
      await containers.close().catch(() => undefined);
      store.close();
      throw new SkiffError(failed.error.code === 'CONFIG_INVALID' ? 'CONFIG_INVALID' : 'MODEL_LOAD_FAILED', `model '${single.name}' did not load: ${failed.error.message}`);
    }
  }
  await restoreModels(registry, store, loadReport, log);
  const budget = new ByteBudget(opts.maxInflightBytes);
  const queries = new QueryProcessor(registry, clock, budget, opts.maxTimeoutMs);
  const body: BodyLimits = { maxBytes: opts.maxBodyBytes ?? cachedBodyLimit(registry), budget };
  const apps = new AppRegistry(store);
  const missing = (opts.optionalModels ?? []).filter((m) => !registry.has(m) || registry.list().find((x) => x.name === m)?.current === undefined);
  restoreApps(apps, store, opts.appsFile, missing, log);
  await store.sync();
  if (shared) {
    const follow = followControl(registry, apps, { repository: opts.modelRepository, log });
    shared.onControlChange((prev, next) => void follow(prev, next));
  }
  const appQueries = new AppProcessor(apps, registry, queries, clock);

  const app = createUwsApp(opts.tls);
  const origins = parseOrigins(opts.allowOrigins ?? []);
  // Browsers on the main port: pages of other sites and rebinding pages are refused everywhere.
  const browsers: BrowserPolicy = { hosts: allowedHosts(opts.host, opts.allowHosts), origins };
  const routes = behindBrowserCheck(app, browsers);
  const ws = registerWsRoute(app, queries, appQueries, log, {
    path: opts.wsPath,
    maxFrameBytes: opts.maxFrameBytes,
    idleTimeoutSec: opts.wsIdleTimeoutSec,
    highWaterBytes: 1024 * 1024,
    maxPendingBytes: opts.wsMaxPendingBytes,
    maxResponsesPerFrame: 1024,
    browsers,
  });
  registerOipRoutes(routes, registry, queries, {
    body,
    maxElements: opts.maxElements,
    serverName: 'skiff',
    serverVersion: PKG.version,
    log,
  });
  registerClipperRoutes(routes, apps, appQueries, { body, maxBatch: 10_000 });
  const obs = startObservability({
    models: registry, apps, appStats: appQueries, rejected: queries.rejected,
    connections: () => ws.connections(), toWallMs: (t) => Date.now() - (clock.now() - t),
  }, log);
  registerMetricsRoutes(routes, obs);
  registerSiteRoutes(routes, registry, apps, { name: 'skiff', version: PKG.version, demoPage: opts.demoPage });
  // The OIP repository extension on the main port too (clients hold one URL), behind the admin token.
  const uploadDir = opts.uploadDir ?? join(opts.modelRepository ?? '.', '.uploads');
  // The admin token is the default: generated here unless the operator gave one or turned it off.
  const adminToken = opts.adminToken === false ? undefined : opts.adminToken ?? randomBytes(24).toString('base64url');
  const repository = durableRoutes(repositoryRoutes(registry, store, { repository: opts.modelRepository, uploadDir, allowCodeUpload: opts.allowCodeUpload === true }), store);
  registerGuardedRoutes(app, repository, { token: adminToken, ...browsers }, opts.maxBodyBytes ?? ADMIN_BODY_BYTES, log);
  routes.any('/*', (res, req) => {
    const ex = exchange(res);
    const method = req.getMethod().toUpperCase();
    const allowed = allowedMethods(req.getUrl());
    if (allowed && !allowed.split(', ').includes(method)) {
      sendError(ex, { code: 'METHOD_NOT_ALLOWED', message: `${req.getUrl()} answers ${allowed}, not ${method}` }, false, undefined, { allow: allowed });
      return;
    }
    sendError(ex, { code: 'NOT_FOUND', message: `no route for ${method} ${req.getUrl()}` });
  });

  let token: us_listen_socket | undefined;
  let admin: AdminServer | undefined;
  let adminTokenFile: string | undefined;
  try {
    token = await listenExclusive(app, opts.host, opts.port, '--port');
    if (opts.adminPort >= 0) {
      admin = await startAdminServer(
        {
          host: opts.adminHost, port: opts.adminPort, maxBodyBytes: opts.maxBodyBytes ?? ADMIN_BODY_BYTES, log, tls: opts.adminTls ?? opts.tls,
          guard: { token: adminToken, hosts: allowedHosts(opts.adminHost, opts.allowHosts), origins },
        },
        durableCalls({ ...applicationCalls(apps, store, registry), ...modelCalls(registry, store, { repository: opts.modelRepository, uploadDir, allowCodeUpload: opts.allowCodeUpload === true }) }, store),
        repository,
        (adminApp, check) => registerDashboard(adminApp, check, obs),
      );
      if (adminToken !== undefined && opts.adminToken === undefined) adminTokenFile = writeTokenFile(opts.tokenDir ?? defaultTokenDir(), admin.port, adminToken);
    }
  } catch (err) {
    // Nothing half-started stays behind (a port already in use, say).
    if (token) uWS.us_listen_socket_close(token);
    admin?.close();
    obs.close();
    await registry.close().catch(() => undefined);
    await containers.close().catch(() => undefined);
    store.close();
    throw err;
  }
  const port = uWS.us_socket_local_port(token);
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
    adminToken,
    adminTokenFile,
    loadReport,
    store,
    containers,
    wsStats: () => ({ connections: ws.connections(), slowReaderCloses: ws.slowReaderCloses() }),
    log,
    close() {
      closing ??= (async () => {
        uWS.us_listen_socket_close(token!);
        admin?.close();
        if (adminTokenFile) rmSync(adminTokenFile, { force: true });
        obs.close();
        // Accepted queries finish; new ones on open connections get SHUTTING_DOWN. The whole
        // shutdown is bounded by drainTimeoutMs: what is still held then is answered and stopped.
        queries.draining = true;
        const t0 = performance.now();
        const drained = await Promise.race([
          registry.drainAll().then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), opts.drainTimeoutMs).unref()),
        ]);
        if (!drained) log.warn({ timeoutMs: opts.drainTimeoutMs }, 'drain timeout: stopping models with queries still in flight');
        try {
          await registry.close(Math.max(0, opts.drainTimeoutMs - (performance.now() - t0)));
        } catch (err) {
          log.error({ err: toErrorInfo(err) }, 'error while unloading models');
        }
        // Let the last answers (and SHUTTING_DOWN refusals) leave before the connections close.
        await new Promise((r) => setTimeout(r, Math.min(250, opts.drainTimeoutMs)));
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
 * Applications at start-up. The rule (documented in the README): the state database wins. When it
 * holds applications, they are the last acknowledged state and are restored as they are; the apps
 * file is then only compared, and each application whose definition there differs (or that the
 * database does not have) is named in a warning — change applications through the admin API, or
 * start with a fresh --state-db. With an empty database the apps file is loaded and persisted.
 * Returns the names the warning named.
 */
export function restoreApps(apps: AppRegistry, store: ControlStore, file: string | undefined, leaveOut: readonly string[], log: Logger): string[] {
  const stored = store.listApps();
  const list = file ? readAppsFile(file) : [];
  const fromFile = list.map((a) => {
    if (!leaveOut.length || !a || typeof a !== 'object' || !Array.isArray((a as { models?: unknown }).models)) return a;
    return { ...a, models: ((a as { models: unknown[] }).models).filter((m) => !leaveOut.includes(String(m))) };
  });
  if (stored.length === 0) {
    for (const a of fromFile) store.putApp({ ...apps.add(a) } as Record<string, unknown> & { name: string });
    return [];
  }
  for (const a of stored) apps.add(a);
  const differ: string[] = [];
  for (const raw of fromFile) {
    let def;
    try {
      def = parseApp(raw);
    } catch (err) {
      throw new Error(`${file}: ${toErrorInfo(err).message}`);
    }
    const kept = apps.get(def.name)?.def;
    if (!kept || JSON.stringify(kept) !== JSON.stringify(def)) differ.push(def.name);
  }
  if (differ.length) {
    log.warn({ apps: differ, file, rule: 'the state database wins' },
      `the apps file ${file} differs from the state database for ${differ.join(', ')}: the database's applications are kept (change them through the admin API, or start with a new --state-db)`);
  }
  return differ;
}

function readAppsFile(file: string): unknown[] {
  let raw: unknown;
  try {
    raw = parseJsonBody(readFileSync(file));
  } catch (err) {
    const why = toErrorInfo(err).message.replace(/^body is not valid JSON/, 'not valid JSON');
    throw new Error(`--apps ${file}: ${why}`);
  }
  const list = Array.isArray(raw) ? raw : (raw as { apps?: unknown }).apps;
  if (!Array.isArray(list)) throw new Error(`--apps ${file}: expected an array of applications or {"apps": [...]}`);
  return list;
}

/** Models added through the admin API, pinned versions and replica counts, as last acknowledged. */
export async function restoreModels(registry: ModelRegistry, store: ControlStore, report: LoadReport, log: Logger): Promise<void> {
  const listed = new Map(registry.list().map((m) => [m.name, m]));
  for (const sv of store.listModelVersions()) {
    const known = listed.get(sv.model)?.versions.find((v) => v.version === sv.version);
    if (known && known.file.path === sv.path && known.state !== 'unloaded') {
      // Loaded from the repository already: what add_model said about it (Clipper's labels,
      // container_name, input_type, batch_size) comes back from the store.
      if (sv.meta) registry.annotate(sv.model, sv.version, sv.meta);
      // The repository's config.json decides the rest; Clipper's batch_size, acknowledged, stays.
      const batch = sv.meta?.batch_size;
      if (typeof batch === 'number' && batch > 0 && known.config.max_batch_size !== batch) {
        await registry.reconfigure(sv.model, sv.version, parseModelConfig(sv.model, { ...known.config, max_batch_size: batch }))
          .catch((err: unknown) => log.error({ model: sv.model, version: sv.version, err: toErrorInfo(err) }, 'cannot restore batch_size'));
      }
      continue;
    }
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

/** Admin calls that only read (the rest change the control plane). */
const isReadCall = (name: string): boolean => name.startsWith('get_') || name.endsWith('/index');

/**
 * An admin call answers once its changes are acknowledged by the store (a shared store sends
 * them to Redis: `sync`). A change is refused up front (STORE_UNAVAILABLE) while the store
 * cannot take it, so no instance applies what the others would never see.
 */
function durable(name: string, h: AdminHandler, store: ControlStore): AdminHandler {
  if (isReadCall(name)) return h;
  return async (body, params) => {
    if (!store.available) throw new SkiffError('STORE_UNAVAILABLE', 'the shared state store (Redis) cannot be reached: admin changes are refused until it is back');
    const r = await h(body, params);
    await store.sync();
    return r;
  };
}

function durableCalls(calls: Record<string, AdminHandler>, store: ControlStore): Record<string, AdminHandler> {
  return Object.fromEntries(Object.entries(calls).map(([n, h]) => [n, durable(n, h, store)]));
}

function durableRoutes(routes: AdminRoute[], store: ControlStore): AdminRoute[] {
  return routes.map((r) => ({ ...r, handler: durable(r.pattern, r.handler, store) }));
}

/** Where a generated admin token goes: a per-user directory (like Jupyter's runtime files). */
export function defaultTokenDir(): string {
  if (process.env.SKIFF_RUNTIME_DIR) return process.env.SKIFF_RUNTIME_DIR;
  return process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'skiff') : join(homedir(), '.skiff');
}

/**
 * Write the token to `<dir>/admin-<port>.token`, readable by the user only (0600 in a 0700
 * directory). A directory that belongs to another user is refused (like Jupyter's runtime
 * directory): its owner could read or swap the token.
 */
function writeTokenFile(dir: string, port: number, token: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) {
    throw new SkiffError('CONFIG_INVALID', `the admin token directory ${dir} is not a directory of this user; set SKIFF_RUNTIME_DIR to one of yours, or give --admin-token`);
  }
  chmodSync(dir, 0o700);
  const file = join(dir, `admin-${port}.token`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

/** The admin listener's body limit (model uploads in base64) unless --max-body-bytes is given. */
const ADMIN_BODY_BYTES = 256 * 1024 * 1024;
const MIN_BODY_BYTES = 1024 * 1024;
const MAX_BODY_BYTES = 256 * 1024 * 1024;
/** Bytes of JSON per tensor element, generously (a double written out in full, and a comma). */
const JSON_BYTES_PER_ELEMENT = 24;
/** Elements assumed for a variable non-batch dimension (a model container's rows). */
const VARIABLE_DIM = 4096;

/**
 * The default body limit of the query routes: the largest full batch any loaded model takes, as
 * JSON (max_batch_size x elements per row x 24 bytes, plus 64 KiB), at least 1 MiB and at most
 * 256 MiB. Bigger bodies cannot be one query of any model; --max-body-bytes overrides it.
 */
export function bodyLimitFor(registry: ModelRegistry): number {
  let most = 0;
  for (const m of registry.list()) {
    for (const v of m.versions) {
      if (!v.spec) continue;
      let perRow = 0;
      for (const t of v.spec.inputs) perRow += t.shape.slice(1).reduce((a, d) => a * (d < 0 ? VARIABLE_DIM : d), 1);
      const rows = v.spec.batchable ? v.config.max_batch_size : 1;
      most = Math.max(most, rows * perRow * JSON_BYTES_PER_ELEMENT + 65536);
    }
  }
  return Math.min(MAX_BODY_BYTES, Math.max(MIN_BODY_BYTES, most));
}

/** bodyLimitFor, recomputed at most once a second (models change rarely; requests often). */
function cachedBodyLimit(registry: ModelRegistry): () => number {
  let value = 0;
  let at = -Infinity;
  return () => {
    const now = performance.now();
    if (now - at > 1000) {
      value = bodyLimitFor(registry);
      at = now;
    }
    return value;
  };
}

import { readFileSync } from 'node:fs';
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
import { exchange, sendError } from './frontend/http.js';
import { AppRegistry } from './selection/apps.js';
import { AppProcessor } from './selection/app-processor.js';
import { MemoryStore, type SelectionStore } from './selection/state-store.js';
import { applicationCalls, startAdminServer, type AdminServer } from './admin/server.js';
import { parseJsonBody } from './protocol/safe-json.js';

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
  adminHost: string;
  /** 0 = ephemeral; -1 = no admin listener. */
  adminPort: number;
  adminToken?: string;
  store?: SelectionStore;
  logger?: Logger;
  clock?: Clock;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, 'modelRepository' | 'appsFile' | 'adminToken' | 'store'> = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  maxBodyBytes: 64 * 1024 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  maxElements: 16 * 1024 * 1024,
  wsPath: '/ws',
  wsIdleTimeoutSec: 120,
  adminHost: '127.0.0.1',
  adminPort: 8001,
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
  readonly log: Logger;
  /** Stop listening, finish in-flight work, stop all workers. */
  close(): Promise<void>;
}

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function assertNativeUws(): void {
  if (!/\[native code\]/.test(String(uWS.App))) {
    throw new Error('uWebSockets.js native binary did not load (unsupported Node version or platform); refusing to run on its slow fallback');
  }
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('Skiff requires a little-endian machine');
}

export async function startServer(partial: Partial<ServerOptions> = {}): Promise<SkiffServer> {
  assertNativeUws();
  const opts: ServerOptions = { ...DEFAULT_SERVER_OPTIONS, ...partial };
  const log = opts.logger ?? createLogger();
  const clock = opts.clock ?? systemClock;
  const registry = new ModelRegistry(clock, log);
  const loadReport: LoadReport = opts.modelRepository ? await registry.loadRepository(opts.modelRepository) : { loaded: [], failed: [] };
  const queries = new QueryProcessor(registry, clock);
  const apps = new AppRegistry(opts.store ?? new MemoryStore());
  if (opts.appsFile) loadApps(apps, opts.appsFile);
  const appQueries = new AppProcessor(apps, registry, queries, clock);

  const app = uWS.App();
  const ws = registerWsRoute(app, queries, appQueries, log, {
    path: opts.wsPath,
    maxFrameBytes: opts.maxFrameBytes,
    idleTimeoutSec: opts.wsIdleTimeoutSec,
    highWaterBytes: 1024 * 1024,
    maxPendingBytes: 256 * 1024 * 1024,
    maxResponsesPerFrame: 1024,
  });
  registerOipRoutes(app, registry, queries, {
    maxBodyBytes: opts.maxBodyBytes,
    maxElements: opts.maxElements,
    serverName: 'skiff',
    serverVersion: PKG.version,
  });
  registerClipperRoutes(app, apps, appQueries, { maxBodyBytes: opts.maxBodyBytes, maxBatch: 10_000 });
  app.any('/*', (res, req) => {
    const ex = exchange(res);
    sendError(ex, { code: 'NOT_FOUND', message: `no route for ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
  });

  const token = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(opts.host, opts.port, (t) => (t ? resolve(t) : reject(new Error(`cannot listen on ${opts.host}:${opts.port}`))));
  });
  const port = uWS.us_socket_local_port(token);
  let admin: AdminServer | undefined;
  if (opts.adminPort >= 0) {
    admin = await startAdminServer(
      { host: opts.adminHost, port: opts.adminPort, token: opts.adminToken, maxBodyBytes: opts.maxBodyBytes, log },
      { ...applicationCalls(apps) },
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
    log,
    close() {
      closing ??= (async () => {
        uWS.us_listen_socket_close(token);
        admin?.close();
        try {
          await registry.close();
        } catch (err) {
          log.error({ err: toErrorInfo(err) }, 'error while unloading models');
        }
        ws.closeAll();
        log.info('skiff stopped');
      })();
      return closing;
    },
  };
}

/** Load application definitions from a JSON file at start-up; an invalid app stops the start. */
export function loadApps(apps: AppRegistry, file: string): void {
  const raw = parseJsonBody(readFileSync(file));
  const list = Array.isArray(raw) ? raw : (raw as { apps?: unknown }).apps;
  if (!Array.isArray(list)) throw new Error(`${file}: expected an array of applications or {"apps": [...]}`);
  for (const a of list) apps.add(a);
}

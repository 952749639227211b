import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp } from 'uWebSockets.js';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { SkiffError, toErrorInfo } from '../errors.js';
import { expectArray, expectObject, expectString, parseJsonBody, type JsonObject } from '../protocol/safe-json.js';
import type { AppRegistry } from '../selection/apps.js';
import type { AppDefinition } from '../selection/app.js';
import type { ControlStore } from '../store/types.js';
import { exchange, readBody, send, sendError, sendJson, type Exchange } from '../http/exchange.js';

/**
 * The management API on its own listener (loopback by default), in Clipper's shape:
 * POST /admin/<call> with a JSON body, GET /admin/ping -> PONG. Every error is a JSON body
 * with a code. When a token is configured, every request needs `Authorization: Bearer <token>`.
 */
export interface AdminOptions {
  host: string;
  port: number;
  token?: string;
  maxBodyBytes: number;
  log: Logger;
  tls?: { key: string; cert: string };
}

export type AdminHandler = (body: JsonObject, params: string[]) => unknown | Promise<unknown>;

/** A POST route outside /admin/<call>, e.g. the OIP repository extension; params are the pattern's :parts. */
export interface AdminRoute {
  pattern: string;
  params: number;
  handler: AdminHandler;
}

export interface AdminServer {
  readonly port: number;
  close(): void;
}

function authorized(req: HttpRequest, token: string | undefined): boolean {
  if (!token) return true;
  const got = Buffer.from(req.getHeader('authorization'));
  const want = Buffer.from(`Bearer ${token}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The token as a `token` query parameter: for browser pages and WebSocket handshakes, which cannot set headers. */
function authorizedByQuery(req: HttpRequest, token: string | undefined): boolean {
  if (!token) return true;
  const got = Buffer.from(req.getQuery('token') ?? '');
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Extra routes on the admin listener (e.g. the dashboard), registered before its catch-all.
 * `authorized(req)` applies the admin token from the Authorization header or a `token` query
 * parameter; call it synchronously in the handler.
 */
export type AdminExtension = (app: TemplatedApp, authorized: (req: HttpRequest) => boolean) => void;

/**
 * An admin request body: empty means `{}`, anything else must be a JSON object (parsed with the
 * prototype-pollution and depth guards of parseJsonBody). Pure; throws SkiffError('BAD_REQUEST').
 */
export function parseAdminBody(bytes: Uint8Array): JsonObject {
  return bytes.byteLength === 0 ? {} : expectObject(parseJsonBody(bytes), 'body');
}

/** Clipper's application calls; each change is made durable in `store` before it is acknowledged. */
export function applicationCalls(apps: AppRegistry, store: Pick<ControlStore, 'putApp' | 'deleteApp' | 'flush'>): Record<string, AdminHandler> {
  const persist = (d: AppDefinition): AppDefinition => {
    store.putApp({ ...d } as Record<string, unknown> & { name: string });
    return d;
  };
  /** Link changes rewrite every selection state of the app: make those durable with the links. */
  const persistLinks = (d: AppDefinition): AppDefinition => {
    persist(d);
    store.flush();
    return d;
  };
  const describe = (d: AppDefinition): Record<string, unknown> => ({ ...d, linked_models: d.models });
  const names = (body: JsonObject, field: string): string[] => expectArray(body[field], field).map((x, i) => expectString(x, `${field}[${i}]`));
  return {
    add_app: (body) => {
      const raw: JsonObject = { ...body };
      if (raw.candidate_model_names !== undefined) {
        raw.models = raw.candidate_model_names;
        delete raw.candidate_model_names;
      }
      return { success: true, app: describe(persist(apps.add(raw))) };
    },
    delete_app: (body) => {
      const n = expectString(body.name, 'name');
      apps.delete(n);
      store.deleteApp(n);
      return { success: true };
    },
    add_model_links: (body) => ({ success: true, app: describe(persistLinks(apps.addLinks(expectString(body.app_name, 'app_name'), names(body, 'model_names')))) }),
    delete_model_links: (body) => ({ success: true, app: describe(persistLinks(apps.deleteLinks(expectString(body.app_name, 'app_name'), names(body, 'model_names')))) }),
    get_all_applications: (body) => (body.verbose === true ? apps.list().map(describe) : apps.list().map((d) => d.name)),
    get_application: (body) => describe(apps.require(expectString(body.name, 'name')).def),
    get_linked_models: (body) => [...apps.require(expectString(body.app_name, 'app_name')).def.models],
    get_selection_state: (body) => {
      const rt = apps.require(expectString(body.app_name, 'app_name'));
      const raw = body.uid;
      if (raw !== undefined && typeof raw !== 'string' && typeof raw !== 'number') throw new SkiffError('BAD_REQUEST', 'uid must be a number or a string');
      const uid = raw === undefined || raw === 0 ? '' : String(raw);
      // A read: a context with no state yet shows the initial weights without storing a state for it.
      const state = apps.store.get(rt.def.name, uid) ?? rt.policy.init(rt.def.models, rt.def.policy_params);
      return { app_name: rt.def.name, uid, policy: rt.def.policy, weights: rt.policy.weights(state) };
    },
  };
}

export async function startAdminServer(opts: AdminOptions, calls: Record<string, AdminHandler>, routes: AdminRoute[] = [], extend?: AdminExtension): Promise<AdminServer> {
  const app: TemplatedApp = opts.tls ? uWS.SSLApp({ key_file_name: opts.tls.key, cert_file_name: opts.tls.cert }) : uWS.App();
  const guard = (ex: Exchange, req: HttpRequest): boolean => {
    if (authorized(req, opts.token)) return true;
    sendError(ex, { code: 'UNAUTHORIZED', message: 'this admin endpoint needs Authorization: Bearer <token>' });
    return false;
  };
  app.get('/admin/ping', (res, req) => {
    const ex = exchange(res);
    if (guard(ex, req)) send(ex, { status: 200, body: 'PONG', contentType: 'text/plain' });
  });
  const run = (ex: Exchange, req: HttpRequest, name: string, handler: AdminHandler, params: string[]): void => {
    readBody(ex, req, opts.maxBodyBytes, (bytes) => {
      const body = parseAdminBody(bytes);
      const call = name;
      Promise.resolve()
        .then(() => handler(body, params))
        .then(
          (result) => sendJson(ex, 200, result),
          (err: unknown) => {
            const info = toErrorInfo(err);
            if (info.code === 'INTERNAL') opts.log.error({ call, err: info }, 'admin call failed');
            sendError(ex, info);
          },
        );
    });
  };
  app.post('/admin/:call', (res: HttpResponse, req: HttpRequest) => {
    const ex = exchange(res);
    if (!guard(ex, req)) return;
    const call = req.getParameter(0) ?? '';
    const handler = Object.hasOwn(calls, call) ? calls[call] : undefined;
    if (!handler) {
      sendError(ex, { code: 'NOT_FOUND', message: `unknown admin call '${call}'` });
      return;
    }
    run(ex, req, call, handler, []);
  });
  for (const r of routes) {
    app.post(r.pattern, (res: HttpResponse, req: HttpRequest) => {
      const ex = exchange(res);
      if (!guard(ex, req)) return;
      const params = Array.from({ length: r.params }, (_, i) => req.getParameter(i) ?? '');
      run(ex, req, r.pattern, r.handler, params);
    });
  }
  extend?.(app, (req) => authorized(req, opts.token) || authorizedByQuery(req, opts.token));
  app.any('/*', (res, req) => {
    const ex = exchange(res);
    if (guard(ex, req)) sendError(ex, { code: 'NOT_FOUND', message: `no admin route ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
  });
  const token = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(opts.host, opts.port, (t) => (t ? resolve(t) : reject(new SkiffError('INTERNAL', `cannot listen on ${opts.host}:${opts.port} for the admin API`))));
  });
  return {
    port: uWS.us_socket_local_port(token),
    close: () => uWS.us_listen_socket_close(token),
  };
}

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import uWS from '../http/uws.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { expectArray, expectObject, expectString, parseJsonBody, type JsonObject } from '../protocol/safe-json.js';
import type { AppRegistry } from '../selection/apps.js';
import type { AppDefinition } from '../selection/app.js';
import type { ControlStore } from '../store/types.js';
import { exchange, readBody, send, sendError, sendJson, type Exchange } from '../http/exchange.js';
import { guard, type GuardOptions } from '../http/guard.js';
import { listenExclusive } from '../http/listen.js';

/**
 * The management API on its own listener (loopback by default), in Clipper's shape:
 * POST /admin/<call> with a JSON body, GET /admin/ping -> PONG. Every error is a JSON body
 * with a code. Every route passes the admin guard (src/http/guard.ts): Host, Origin, the token
 * (generated at start unless the operator turned it off) and, for POSTs, a JSON content type.
 */
export interface AdminOptions {
  host: string;
  port: number;
  /** The admin guard: token, Host names, browser origins (src/http/guard.ts). */
  guard: GuardOptions;
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

/**
 * Extra routes on the admin listener (e.g. the dashboard), registered before its catch-all.
 * `check(req)` applies the admin guard with the token also accepted as a `token` query parameter
 * (browser pages and WebSocket handshakes cannot set headers); call it synchronously.
 */
export type AdminExtension = (app: TemplatedApp, check: (req: HttpRequest) => ErrorInfo | null) => void;

/**
 * An admin request body: empty means `{}`, anything else must be a JSON object (parsed with the
 * prototype-pollution and depth guards of parseJsonBody). Pure; throws SkiffError('BAD_REQUEST').
 */
export function parseAdminBody(bytes: Uint8Array): JsonObject {
  return bytes.byteLength === 0 ? {} : expectObject(parseJsonBody(bytes), 'body');
}

/** Clipper's application calls; each change is made durable in `store` before it is acknowledged. */
export function applicationCalls(apps: AppRegistry, store: Pick<ControlStore, 'putApp' | 'deleteApp' | 'flush'>, models: { has(name: string): boolean } = { has: () => true }): Record<string, AdminHandler> {
  const persist = (d: AppDefinition): AppDefinition => {
    store.putApp({ ...d } as Record<string, unknown> & { name: string });
    return d;
  };
  /** States follow link changes when read (AppRegistry.reconcile): only the definition changes. */
  const persistLinks = persist;
  // Clipper's shape: linked_models, and the input type by the name Clipper answers ("integers").
  const describe = (d: AppDefinition): Record<string, unknown> => ({ ...d, input_type: d.input_type === 'ints' ? 'integers' : d.input_type, linked_models: d.models });
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
    add_model_links: (body) => {
      const app = expectString(body.app_name, 'app_name');
      const arms = names(body, 'model_names');
      // Like Clipper: a link names a model that exists ("name" or "name:version").
      const missing = arms.filter((a) => !models.has(a.split(':')[0]!));
      if (missing.length) throw new SkiffError('MODEL_NOT_FOUND', `cannot link ${missing.join(', ')} to '${app}': no such model`);
      return { success: true, app: describe(persistLinks(apps.addLinks(app, arms))) };
    },
    delete_model_links: (body) => ({ success: true, app: describe(persistLinks(apps.deleteLinks(expectString(body.app_name, 'app_name'), names(body, 'model_names')))) }),
    get_all_applications: (body) => (body.verbose === true ? apps.list().map(describe) : apps.list().map((d) => d.name)),
    // Clipper answers {} for an application it does not know (its client then returns None).
    get_application: (body) => {
      const rt = apps.get(expectString(body.name, 'name'));
      return rt ? describe(rt.def) : {};
    },
    get_linked_models: (body) => [...apps.require(expectString(body.app_name, 'app_name')).def.models],
    get_selection_state: (body) => {
      const rt = apps.require(expectString(body.app_name, 'app_name'));
      const raw = body.uid;
      if (raw !== undefined && typeof raw !== 'string' && typeof raw !== 'number') throw new SkiffError('BAD_REQUEST', 'uid must be a number or a string');
      const uid = raw === undefined || raw === 0 ? '' : String(raw);
      return { app_name: rt.def.name, uid, policy: rt.def.policy, weights: apps.weights(rt, uid) };
    },
  };
}

/** Run an admin handler on a JSON body and answer it (shared by every place admin routes answer). */
export function runAdminCall(ex: Exchange, req: HttpRequest, maxBodyBytes: number, log: Logger, call: string, handler: AdminHandler, params: string[]): void {
  readBody(ex, req, maxBodyBytes, (bytes) => {
    const body = parseAdminBody(bytes);
    Promise.resolve()
      .then(() => handler(body, params))
      .then(
        (result) => sendJson(ex, 200, result),
        (err: unknown) => {
          const info = toErrorInfo(err);
          if (info.code === 'INTERNAL') log.error({ call, err: info }, 'admin call failed');
          sendError(ex, info);
        },
      );
  });
}

/**
 * Admin routes served on another listener (the OIP repository extension on the main port, for
 * clients that hold one URL): the same guard and calls as on the admin listener. Without a
 * token configured they are refused there (the main port may be exposed; the admin port is the
 * place for a tokenless loopback).
 */
export function registerGuardedRoutes(app: TemplatedApp, routes: AdminRoute[], guardOpts: GuardOptions, maxBodyBytes: number, log: Logger): void {
  const g: GuardOptions = guardOpts.token !== undefined ? guardOpts : { ...guardOpts, token: randomBytes(32).toString('base64url') };
  for (const r of routes) {
    app.post(r.pattern, (res: HttpResponse, req: HttpRequest) => {
      const ex = exchange(res);
      const refused = guard(req, g, { json: true });
      if (refused) return sendError(ex, refused);
      const params = Array.from({ length: r.params }, (_, i) => req.getParameter(i) ?? '');
      runAdminCall(ex, req, maxBodyBytes, log, r.pattern, r.handler, params);
    });
  }
}

export async function startAdminServer(opts: AdminOptions, calls: Record<string, AdminHandler>, routes: AdminRoute[] = [], extend?: AdminExtension): Promise<AdminServer> {
  const app: TemplatedApp = opts.tls ? uWS.SSLApp({ key_file_name: opts.tls.key, cert_file_name: opts.tls.cert }) : uWS.App();
  /** Every admin route passes the guard first; false: refused (answered). */
  const pass = (ex: Exchange, req: HttpRequest, json: boolean): boolean => {
    const refused = guard(req, opts.guard, { json });
    if (refused) sendError(ex, refused);
    return refused === null;
  };
  // A known admin path asked with another method gets 405 with Allow, as on the main port.
  const routeRes = routes.map((r) => new RegExp(`^${r.pattern.replace(/:[a-z]+/g, '[^/]+')}$`));
  const allowed = (url: string): string | undefined => {
    if (url === '/admin/ping') return 'GET';
    const m = /^\/admin\/([^/]+)$/.exec(url);
    if (m && Object.hasOwn(calls, m[1]!)) return 'POST';
    return routeRes.some((re) => re.test(url)) ? 'POST' : undefined;
  };
  const wrongMethod = (ex: Exchange, req: HttpRequest): boolean => {
    const method = req.getMethod().toUpperCase();
    const allow = allowed(req.getUrl());
    if (!allow || allow === method) return false;
    sendError(ex, { code: 'METHOD_NOT_ALLOWED', message: `${req.getUrl()} answers ${allow}, not ${method}` }, false, undefined, { allow });
    return true;
  };
  app.get('/admin/ping', (res, req) => {
    const ex = exchange(res);
    if (pass(ex, req, false)) send(ex, { status: 200, body: 'PONG', contentType: 'text/plain' });
  });
  app.post('/admin/:call', (res: HttpResponse, req: HttpRequest) => {
    const ex = exchange(res);
    if (!pass(ex, req, true)) return;
    const call = req.getParameter(0) ?? '';
    const handler = Object.hasOwn(calls, call) ? calls[call] : undefined;
    if (!handler) {
      if (!wrongMethod(ex, req)) sendError(ex, { code: 'NOT_FOUND', message: `unknown admin call '${call}'` });
      return;
    }
    runAdminCall(ex, req, opts.maxBodyBytes, opts.log, call, handler, []);
  });
  for (const r of routes) {
    app.post(r.pattern, (res: HttpResponse, req: HttpRequest) => {
      const ex = exchange(res);
      if (!pass(ex, req, true)) return;
      const params = Array.from({ length: r.params }, (_, i) => req.getParameter(i) ?? '');
      runAdminCall(ex, req, opts.maxBodyBytes, opts.log, r.pattern, r.handler, params);
    });
  }
  extend?.(app, (req) => guard(req, opts.guard, { tokenInQuery: true }));
  app.any('/*', (res, req) => {
    const ex = exchange(res);
    if (!pass(ex, req, false) || wrongMethod(ex, req)) return;
    sendError(ex, { code: 'NOT_FOUND', message: `no admin route ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
  });
  const token = await listenExclusive(app, opts.host, opts.port, '--admin-port');
  return {
    port: uWS.us_socket_local_port(token),
    close: () => uWS.us_listen_socket_close(token),
  };
}

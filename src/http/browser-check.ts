import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { browserRefusal, type BrowserPolicy } from './guard.js';
import { exchange, sendError } from './exchange.js';

/** The route-registering methods of a uWS app (HTTP verbs); `ws` has its own check in its upgrade. */
const ROUTE_METHODS: ReadonlySet<PropertyKey> = new Set(['get', 'post', 'put', 'del', 'patch', 'options', 'head', 'any', 'connect', 'trace']);

type Handler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;

/**
 * `app` as the main port's frontends see it: every HTTP route they register runs behind the
 * browser check (guard.ts browserRefusal) first, so no route can be forgotten. A request from
 * a page on another site, or from a page that rebinds its own name to this address, is refused
 * (403) before its handler sees it — no query, no feedback, no answer to read. Requests without
 * an Origin (every non-browser client) cost one header lookup.
 *
 * The refusal is written synchronously, inside the handler call (uWS: no onAborted needed, no
 * cork); the body, if any, is never read.
 */
export function behindBrowserCheck(app: TemplatedApp, policy: BrowserPolicy): TemplatedApp {
  if (policy.origins.has('*')) return app;
  const wrap = (handler: Handler): Handler => (res, req) => {
    const refused = browserRefusal(req, policy);
    if (refused) return sendError(exchange(res), refused);
    return handler(res, req);
  };
  const proxy: TemplatedApp = new Proxy(app, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (!ROUTE_METHODS.has(prop)) return (value as (...a: unknown[]) => unknown).bind(target);
      return (pattern: string, handler: Handler) => {
        (value as (p: string, h: Handler) => unknown).call(target, pattern, wrap(handler));
        return proxy;
      };
    },
  });
  return proxy;
}

import { timingSafeEqual } from 'node:crypto';
import type { HttpRequest } from 'uWebSockets.js';
import type { ErrorInfo } from '../errors.js';

/**
 * The one guard in front of every admin route, wherever admin routes answer (the admin listener,
 * the OIP repository calls on the main port): it is what stops a web page the user merely visits
 * from driving the admin API through the browser (cross-site requests, DNS rebinding).
 *
 *  - Host must name the listener: the loopback names and the bound address when it is bound to
 *    loopback, the bound address otherwise (any name when bound to every interface: the token
 *    then stands alone), plus the names given with --allow-host. Ports are not compared (a proxy
 *    on loopback may forward its own). A rebinding page's Host is its own domain.
 *  - A browser's Origin must be the listener's own (same host and port as Host) or one allowed
 *    with --allow-origin. Clients that send no Origin (curl, SDKs) are unaffected.
 * The main port applies the browser part alone (browserRefusal) to every request that carries an
 * Origin, its WebSocket upgrade included.
 *  - A POST must be declared `application/json` (unless it carries the token in its Authorization
 *    header): no HTML form or text/plain post passes, and those are the only cross-site posts a
 *    browser makes without a preflight.
 *  - The bearer token (Authorization header; `?token=` only where a browser cannot set headers).
 * Pure: reads the request's headers synchronously (uWS rules) and returns the refusal, if any.
 */
export interface BrowserPolicy {
  /** Host names accepted in Host (lower case, without port); null: any. */
  hosts: ReadonlySet<string> | null;
  /** Origins a browser may call from, besides the listener's own (parseOrigins). */
  origins: ReadonlySet<string>;
}

export interface GuardOptions extends BrowserPolicy {
  /** The admin token; undefined: no token (an operator's explicit choice, loopback only). */
  token?: string;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1', '[::1]'];
const WILDCARD = new Set(['0.0.0.0', '::', '[::]', '']);

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The Host names a listener bound to `bindHost` answers to (null: any), plus `extra`. */
export function allowedHosts(bindHost: string, extra: readonly string[] = []): Set<string> | null {
  const h = bindHost.toLowerCase();
  if (WILDCARD.has(h)) return null;
  // A bare IPv6 address appears in Host in brackets ("[fe80::1]:8001").
  const names = new Set([h, h.includes(':') && !h.startsWith('[') ? `[${h}]` : h]);
  if (isLoopback(h)) for (const n of LOOPBACK_NAMES) names.add(n);
  for (const e of extra) names.add(hostName(e));
  return names;
}

/**
 * The origins given with --allow-origin: each value may be a comma list; compared in lower case
 * and without a trailing slash (browsers send "https://ops.example.com", people paste
 * "https://ops.example.com/"). "*" allows every origin.
 */
export function parseOrigins(values: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const v of values) {
    for (const part of v.split(',')) {
      const o = part.trim().toLowerCase().replace(/\/+$/, '');
      if (o !== '') out.add(o);
    }
  }
  return out;
}

/** The host name of a Host header value ("[::1]:8001" -> "[::1]", "Example.com:80" -> "example.com"). */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/** Whether a browser Origin is this listener's own: its host[:port] equals the Host header. */
export function sameOrigin(origin: string, host: string): boolean {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/]+)$/i.exec(origin.trim());
  return m !== null && m[1]!.toLowerCase() === host.trim().toLowerCase();
}

const CROSS_SITE: ErrorInfo = { code: 'ORIGIN_NOT_ALLOWED', message: 'cross-site requests are refused (start the server with --allow-origin ORIGIN to allow one)' };
const OTHER_HOST: ErrorInfo = { code: 'HOST_NOT_ALLOWED', message: 'this listener does not answer to that Host name (start the server with --allow-host NAME to add one)' };

/**
 * The browser check of the main port (HTTP routes and the WebSocket upgrade): a request without
 * an Origin is not from a browser and passes (a proxy may forward any Host). A browser request
 * passes when its origin is allowed with --allow-origin, or when it is the listener's own page
 * reached by one of the listener's names: a page that rebinds its own domain to 127.0.0.1 is
 * same-origin with itself, and only its Host gives it away.
 */
export function browserRefusal(req: HttpRequest, { hosts, origins }: BrowserPolicy): ErrorInfo | null {
  const origin = req.getHeader('origin');
  if (origin === '') return null;
  if (origins.has(origin.trim().toLowerCase()) || origins.has('*')) return null;
  const host = req.getHeader('host');
  if (!sameOrigin(origin, host)) return CROSS_SITE;
  if (hosts && !hosts.has(hostName(host))) return OTHER_HOST;
  return null;
}

const BEARER = /^bearer +(\S+) *$/i;

function tokenMatches(got: string, token: string): boolean {
  const a = Buffer.from(got);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface GuardCheck {
  /** Require `Content-Type: application/json` (POST with a body). */
  json?: boolean;
  /** Also accept the token as `?token=` (pages and WebSocket handshakes a browser opens). */
  tokenInQuery?: boolean;
}

/** The refusal for this request, or null to let it through. Call synchronously in the handler. */
export function guard(req: HttpRequest, opts: GuardOptions, check: GuardCheck = {}): ErrorInfo | null {
  if (opts.hosts && !opts.hosts.has(hostName(req.getHeader('host')))) return OTHER_HOST;
  const browser = browserRefusal(req, opts);
  if (browser) return browser;
  let byHeader = false;
  if (opts.token !== undefined) {
    // The scheme is case-insensitive (RFC 9110); clients write "Bearer", some "bearer".
    const m = BEARER.exec(req.getHeader('authorization'));
    const bearer = m ? m[1]! : '';
    byHeader = bearer !== '' && tokenMatches(bearer, opts.token);
    const ok = byHeader || (check.tokenInQuery === true && tokenMatches(req.getQuery('token') ?? '', opts.token));
    if (!ok) return { code: 'UNAUTHORIZED', message: 'the admin API needs Authorization: Bearer <token> (see the token file the server printed at start)' };
  }
  // A request that carries the token in its Authorization header cannot come from a web page
  // without a CORS preflight (which is never granted), so only the others must declare JSON.
  if (check.json && !byHeader) {
    const type = req.getHeader('content-type').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') return { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'admin requests must be sent with Content-Type: application/json' };
  }
  return null;
}

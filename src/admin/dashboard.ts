import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import uWS from '../http/uws.js';
import { ErrorCodes, type ErrorInfo } from '../errors.js';
import type { Observability } from '../metrics/observability.js';
import { exchange, send, sendError, statusLine } from '../http/exchange.js';

/**
 * The live dashboard on the admin listener:
 *   GET /dashboard                 the page (src/admin/dashboard/index.html)
 *   GET /dashboard/{app.js,app.css} its script and style
 *   GET /dashboard/uplot.{js,css}  uPlot, served from node_modules (no CDN)
 *   WS  /dashboard/ws              JSON messages: {"type":"hello", intervalMs, history: Frame[]},
 *                                  then {"type":"frame", frame} every feed interval
 * Every route passes the admin guard (Host, Origin, the token from the header or `?token=` for
 * the browser: the page threads the query through to its assets and WebSocket). A viewer that does not keep up skips frames
 * instead of growing a buffer on the server.
 */
const DIR = fileURLToPath(new URL('../../../src/admin/dashboard/', import.meta.url));
const requireHere = createRequire(import.meta.url);
const VIEWER_HIGH_WATER = 1024 * 1024;

interface Asset {
  body: string;
  contentType: string;
}

function loadAssets(): Record<string, Asset> {
  const file = (p: string): string => readFileSync(p, 'utf8');
  return {
    '/dashboard/app.js': { body: file(`${DIR}app.js`), contentType: 'text/javascript; charset=utf-8' },
    '/dashboard/app.css': { body: file(`${DIR}app.css`), contentType: 'text/css; charset=utf-8' },
    '/dashboard/uplot.js': { body: file(requireHere.resolve('uplot/dist/uPlot.iife.min.js')), contentType: 'text/javascript; charset=utf-8' },
    '/dashboard/uplot.css': { body: file(requireHere.resolve('uplot/dist/uPlot.min.css')), contentType: 'text/css; charset=utf-8' },
  };
}

type Viewer = Record<string, never>;

export function registerDashboard(app: TemplatedApp, check: (req: HttpRequest) => ErrorInfo | null, obs: Observability): void {
  const assets = loadAssets();
  const page = readFileSync(`${DIR}index.html`, 'utf8');
  const viewers = new Set<WebSocket<Viewer>>();

  const deny = (res: HttpResponse, err: ErrorInfo): void => sendError(exchange(res), err);

  const servePage = (res: HttpResponse, req: HttpRequest): void => {
    const refused = check(req);
    if (refused) return deny(res, refused);
    const token = req.getQuery('token');
    // encodeURIComponent leaves nothing that could end the double-quoted attributes it lands in;
    // no-referrer: the token in this page's URL is never sent on as a Referer.
    const query = token ? `?token=${encodeURIComponent(token)}` : '';
    send(exchange(res), { status: 200, body: page.replaceAll('{{query}}', query), contentType: 'text/html; charset=utf-8', headers: { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' } });
  };
  app.get('/dashboard', servePage);
  app.get('/dashboard/', servePage);
  for (const [path, asset] of Object.entries(assets)) {
    app.get(path, (res, req) => {
      const refused = check(req);
      if (refused) return deny(res, refused);
      send(exchange(res), { status: 200, body: asset.body, contentType: asset.contentType, headers: { 'cache-control': 'no-cache' } });
    });
  }

  const push = (ws: WebSocket<Viewer>, msg: string): void => {
    if (ws.getBufferedAmount() > VIEWER_HIGH_WATER) return;
    ws.send(msg, false);
  };
  app.ws<Viewer>('/dashboard/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: 4096,
    idleTimeout: 120,
    maxBackpressure: 16 * VIEWER_HIGH_WATER,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const refused = check(req);
      if (refused) {
        res.writeStatus(statusLine(ErrorCodes[refused.code].status)).writeHeader('content-type', 'application/json')
          .end(JSON.stringify({ error: refused.message, code: refused.code }));
        return;
      }
      res.upgrade<Viewer>({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      viewers.add(ws);
      ws.send(JSON.stringify({ type: 'hello', intervalMs: obs.feed.opts.intervalMs, history: obs.feed.history() }), false);
    },
    close: (ws) => {
      viewers.delete(ws);
    },
  });
  obs.feed.subscribe((frame) => {
    if (viewers.size === 0) return;
    const msg = JSON.stringify({ type: 'frame', frame });
    for (const v of viewers) push(v, msg);
  });
  obs.onClose(() => {
    for (const ws of [...viewers]) ws.end(1001, 'server shutting down');
  });
}

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { ModelRegistry } from '../models/registry.js';
import type { AppRegistry } from '../selection/apps.js';
import { exchange, send, sendError, sendJson } from '../http/exchange.js';

/**
 * What a person finds on the main port, beside the protocols:
 *   GET /client/skiff.js(.map)     the browser build of the WebSocket client (skiff-serve/client),
 *                                  made by `npm run build` (scripts/build.mjs): always served
 * and, unless the operator turns the demo page off (`--no-demo-page`):
 *   GET /                          the demo page (src/frontend/site/index.html): draw a digit,
 *                                  see every model's answer and the applications' choices live
 *   GET /site/{demo.js,demo.css}   its script and style
 *   GET /site/info                 models (inputs, outputs, versions) and applications, read-only
 *   GET /site/apps/{app}/weights   an application's policy weights (application-wide context), read-only
 *
 * Why a public read of the weights: the page must show Exp3's and Exp4's weights move, and the
 * admin API's get_selection_state needs the admin token, which a visitor's browser must never
 * hold. These routes show nothing the main port does not already publish: `/metrics` carries
 * every model, application, arm and shared-context weight (skiff_app_selection_weight), and
 * `/v2/models/{m}` each model's inputs and outputs. Per-user weights stay behind the admin
 * token. Nothing here changes state (reading a context with no state creates none); queries and
 * feedback go over /ws like any client's.
 */
const SITE = fileURLToPath(new URL('../../../src/frontend/site/', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../client/', import.meta.url));

interface Asset {
  body: string | Buffer;
  contentType: string;
}

function assets(demoPage: boolean): Record<string, Asset> {
  const out: Record<string, Asset> = demoPage ? {
    '/site/demo.js': { body: readFileSync(`${SITE}demo.js`), contentType: 'text/javascript; charset=utf-8' },
    '/site/demo.css': { body: readFileSync(`${SITE}demo.css`), contentType: 'text/css; charset=utf-8' },
  } : {};
  // The bundle exists after `npm run build`; a server run from sources without it says so.
  const bundle = `${CLIENT}skiff.js`;
  if (existsSync(bundle)) {
    out['/client/skiff.js'] = { body: readFileSync(bundle), contentType: 'text/javascript; charset=utf-8' };
    if (existsSync(`${bundle}.map`)) out['/client/skiff.js.map'] = { body: readFileSync(`${bundle}.map`), contentType: 'application/json' };
  }
  return out;
}

export function registerSiteRoutes(app: TemplatedApp, registry: ModelRegistry, apps: AppRegistry, server: { name: string; version: string; demoPage: boolean }): void {
  const files = assets(server.demoPage);
  for (const [path, a] of Object.entries(files)) {
    app.get(path, (res, req) => send(exchange(res, req), { status: 200, body: a.body, contentType: a.contentType, headers: { 'cache-control': 'no-cache' } }));
  }
  if (!files['/client/skiff.js']) {
    app.get('/client/skiff.js', (res) => sendError(exchange(res), { code: 'NOT_FOUND', message: 'the browser client is not built: run npm run build' }));
  }
  if (!server.demoPage) return;
  const page = readFileSync(`${SITE}index.html`);
  const html = (res: HttpResponse, req: HttpRequest): void => send(exchange(res, req), { status: 200, body: page, contentType: 'text/html; charset=utf-8', headers: { 'cache-control': 'no-cache' } });
  app.get('/', html);
  app.get('/index.html', html);
  app.get('/favicon.ico', (res) => send(exchange(res), { status: 204, body: '' }));
  app.get('/site/info', (res) => {
    const models = registry.list().map((m) => {
      const v = m.versions.find((x) => x.version === m.current);
      return {
        name: m.name,
        version: m.current ?? null,
        ready: v?.state === 'ready',
        inputs: v?.spec?.inputs ?? [],
        outputs: v?.spec?.outputs ?? [],
      };
    });
    const list = apps.list().map((d) => ({ name: d.name, policy: d.policy, models: d.models, input_type: d.input_type, latency_slo_micros: d.latency_slo_micros }));
    sendJson(exchange(res), 200, { server: server.name, version: server.version, models, apps: list });
  });
  app.get('/site/apps/:app/weights', (res, req) => {
    const name = decodeURIComponent(req.getParameter(0) ?? '');
    const ex = exchange(res);
    const rt = apps.get(name);
    if (!rt) return sendError(ex, { code: 'APP_NOT_FOUND', message: `no application '${name}'` });
    sendJson(ex, 200, { app_name: name, policy: rt.def.policy, weights: apps.weights(rt, '') });
  });
}

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { SkiffError, toErrorInfo } from '../errors.js';
import type { Observability } from '../metrics/observability.js';
import { modelStatistics } from '../metrics/oip-stats.js';
import { exchange, send, sendError, sendJson } from '../http/exchange.js';

/**
 * Observability routes on the main port:
 *   GET /metrics                                    Prometheus text exposition for a scrape (Accept
 *                                                   text/plain;version=0.0.4 or OpenMetrics), else
 *                                                   Clipper's JSON (what inspect_instance reads)
 *   GET /v2/models/stats                            OIP/Triton statistics of every loaded model version
 *   GET /v2/models/{m}/stats                        ... of every loaded version of model m
 *   GET /v2/models/{m}/versions/{v}/stats           ... of one version
 *   GET /clipper/metrics                            Clipper's JSON metrics report
 */
export function registerMetricsRoutes(app: TemplatedApp, obs: Observability): void {
  // Large reports go out compressed when the client accepts it (Prometheus scrapes send Accept-Encoding: gzip).
  app.get('/metrics', (res, req) => {
    const ex = exchange(res, req);
    // Content negotiation: a Prometheus scrape asks for text/plain;version=0.0.4 or OpenMetrics and
    // gets the exposition format; anything else (`*/*`, JSON, no Accept: Clipper's inspect_instance,
    // a browser, curl) gets Clipper's JSON report.
    if (!wantsExposition(req.getHeader('accept'))) {
      try {
        sendJson(ex, 200, obs.clipper());
      } catch (err) {
        sendError(ex, toErrorInfo(err));
      }
      return;
    }
    obs.prometheus.scrape().then(
      (body) => send(ex, { status: 200, body, contentType: obs.prometheus.contentType }),
      (err: unknown) => sendError(ex, toErrorInfo(err)),
    );
  });

  app.get('/clipper/metrics', (res, req) => {
    const ex = exchange(res, req);
    try {
      sendJson(ex, 200, obs.clipper());
    } catch (err) {
      sendError(ex, toErrorInfo(err));
    }
  });

  const stats = (res: HttpResponse, req: HttpRequest, model?: string, rawVersion?: string): void => {
    const ex = exchange(res, req);
    try {
      let versions = obs.stats().versions;
      if (model !== undefined) {
        versions = versions.filter((v) => v.model === model);
        if (versions.length === 0) throw new SkiffError('MODEL_NOT_FOUND', `model '${model}' is not loaded`);
      }
      if (rawVersion !== undefined) {
        versions = versions.filter((v) => String(v.version) === rawVersion);
        if (versions.length === 0) throw new SkiffError('VERSION_NOT_FOUND', `model '${model}' has no version ${rawVersion}`);
      } else {
        versions = versions.filter((v) => v.live !== undefined);
      }
      sendJson(ex, 200, { model_stats: versions.map(modelStatistics) });
    } catch (err) {
      sendError(ex, toErrorInfo(err));
    }
  };
  app.get('/v2/models/stats', (res, req) => stats(res, req));
  app.get('/v2/models/:model/stats', (res, req) => stats(res, req, req.getParameter(0) ?? ''));
  app.get('/v2/models/:model/versions/:version/stats', (res, req) => stats(res, req, req.getParameter(0) ?? '', req.getParameter(1) ?? ''));
}

/** Whether an Accept header asks for the Prometheus exposition (text/plain or OpenMetrics) rather than JSON. */
export function wantsExposition(accept: string): boolean {
  let best = { q: 0, expo: false, wildcard: true };
  for (const part of accept.toLowerCase().split(',')) {
    const [type, ...params] = part.trim().split(';').map((x) => x.trim());
    if (!type) continue;
    const q = Number(params.find((p) => p.startsWith('q='))?.slice(2) ?? '1');
    if (!(q > 0)) continue;
    // text/* can only be served by the text exposition; */* and application/* get the JSON.
    const expo = type === 'text/plain' || type === 'application/openmetrics-text' || type === 'text/*';
    const wildcard = type === '*/*' || type === 'application/*' || type === 'text/*';
    if (!expo && !wildcard && type !== 'application/json') continue;
    // The highest q wins; at equal q a named type beats a wildcard ("text/plain, */*" is a scrape).
    if (q > best.q || (q === best.q && best.wildcard && !wildcard)) best = { q, expo, wildcard };
  }
  return best.expo;
}

import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { SkiffError, toErrorInfo } from '../errors.js';
import type { Observability } from '../metrics/observability.js';
import { modelStatistics } from '../metrics/oip-stats.js';
import { exchange, send, sendError, sendJson } from '../http/exchange.js';

/**
 * Observability routes on the main port:
 *   GET /metrics                                    Prometheus text exposition
 *   GET /v2/models/stats                            OIP/Triton statistics of every loaded model version
 *   GET /v2/models/{m}/stats                        ... of every loaded version of model m
 *   GET /v2/models/{m}/versions/{v}/stats           ... of one version
 *   GET /clipper/metrics                            Clipper's JSON metrics report
 */
export function registerMetricsRoutes(app: TemplatedApp, obs: Observability): void {
  app.get('/metrics', (res) => {
    const ex = exchange(res);
    obs.prometheus.scrape().then(
      (body) => send(ex, { status: 200, body, contentType: obs.prometheus.contentType }),
      (err: unknown) => sendError(ex, toErrorInfo(err)),
    );
  });

  app.get('/clipper/metrics', (res) => {
    const ex = exchange(res);
    try {
      sendJson(ex, 200, obs.clipper());
    } catch (err) {
      sendError(ex, toErrorInfo(err));
    }
  });

  const stats = (res: HttpResponse, model?: string, rawVersion?: string): void => {
    const ex = exchange(res);
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
  app.get('/v2/models/stats', (res) => stats(res));
  app.get('/v2/models/:model/stats', (res, req) => stats(res, req.getParameter(0) ?? ''));
  app.get('/v2/models/:model/versions/:version/stats', (res, req) => stats(res, req.getParameter(0) ?? '', req.getParameter(1) ?? ''));
}

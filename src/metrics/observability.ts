import type { Logger } from 'pino';
import { clipperMetrics, meterCounts, type ClipperMetrics } from './clipper-json.js';
import { DashboardFeed, type FeedOptions } from './feed.js';
import { LoopLag } from './loop-lag.js';
import { RateMeters } from './meters.js';
import { createPrometheusExporter, type PrometheusExporter } from './prometheus.js';
import { collectStats, type ServerStats, type StatsSources } from './stats.js';

/**
 * Everything that observes a running server, built once by the composition root: the snapshot
 * reader, the Prometheus exporter, Clipper-style meters, the dashboard feed and the event-loop
 * lag monitor. Its timers are unref'd and stop at `close`. Main thread only.
 */
export interface Observability {
  stats(): ServerStats;
  readonly prometheus: PrometheusExporter;
  readonly feed: DashboardFeed;
  clipper(): ClipperMetrics;
  /** Run `fn` at close (e.g. disconnect dashboard viewers). */
  onClose(fn: () => void): void;
  close(): void;
}

export const DEFAULT_FEED_OPTIONS: FeedOptions = Object.freeze({ intervalMs: 500, historyLength: 600 });

/** `log` receives errors of the background timers (which never stop serving). */
export function startObservability(src: StatsSources, log: Logger, feedOptions: FeedOptions = DEFAULT_FEED_OPTIONS): Observability {
  const lag = new LoopLag();
  const stats = (): ServerStats => collectStats(src, lag.last);
  const onError = (what: string) => (err: unknown): void => log.error({ err: err instanceof Error ? err.message : String(err) }, `${what} failed`);
  const meters = new RateMeters(() => meterCounts(stats()), { onError: onError('metrics meter tick') });
  const feed = new DashboardFeed(stats, feedOptions, onError('dashboard frame'));
  feed.start();
  const prometheus = createPrometheusExporter(stats);
  const closers: (() => void)[] = [];
  let closed = false;
  return {
    stats,
    prometheus,
    feed,
    clipper: () => clipperMetrics(stats(), meters),
    onClose: (fn) => {
      closers.push(fn);
    },
    close: () => {
      if (closed) return;
      closed = true;
      for (const fn of closers) fn();
      feed.close();
      meters.close();
      lag.close();
    },
  };
}

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeClassifier, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { DashboardFeed } from '../../src/metrics/feed.js';
import { collectStats } from '../../src/metrics/stats.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { bytesOf, getJson, postJson, serve, tempDir } from './helpers.js';

/** One sample of a Prometheus text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

class Scrape {
  constructor(readonly samples: Sample[]) {}
  /** Sum of the samples of `name` whose labels include `labels`. */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.series(name, labels).reduce((a, s) => a + s.value, 0);
  }
  series(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }
}

describe('observability: Prometheus /metrics, OIP statistics, Clipper metrics, dashboard feed', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let client: SkiffClient;
  const clf = { model: 'clf', version: '1' };
  let seq = 0;

  /** A fresh input (never seen before, so never a cache hit). */
  const uniqueInput = (): Tensor => {
    const x = new Float32Array(64);
    const k = ++seq;
    for (let j = 0; j < 64; j++) x[j] = Math.sin(k * 0.37 + j) * 2;
    return { name: 'input', datatype: 'FP32', shape: [1, 64], data: bytesOf(x) };
  };
  const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
  const scrape = async (): Promise<Scrape> => {
    // The Accept header Prometheus 2.x sends with a scrape.
    const r = await fetch(`${server.url}/metrics`, { headers: { accept: PROMETHEUS_ACCEPT } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return new Scrape(parseExposition(await r.text()));
  };
  const appInput = (): Tensor => {
    const t = uniqueInput();
    return { ...t, shape: [64] };
  };

  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 11 });
    writeModelConfig(tmp.dir, 'clf', { max_batch_size: 32, batch_wait_timeout_us: 2000 });
    // A JS model whose worker exits on a poison input (x[0] = 666).
    mkdirSync(join(tmp.dir, 'exiter', '1'), { recursive: true });
    writeFileSync(join(tmp.dir, 'exiter', '1', 'model.mjs'), `
export const metadata = {
  inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 4] }],
};
export function predict(inputs) {
  const x = inputs.input.data;
  if (x[0] === 666) process.exit(3);
  return { output: { datatype: 'FP32', shape: inputs.input.shape, data: Float32Array.from(x) } };
}
`);
    writeModelConfig(tmp.dir, 'exiter', { max_batch_size: 1, cache_bytes: 0 });
    const appsFile = join(tmp.dir, 'apps.json');
    writeFileSync(appsFile, JSON.stringify([{
      name: 'clfapp', input_type: 'floats', input_shape: [64], latency_slo_micros: 100_000, default_output: -1, policy: 'exp3', models: ['clf'], seed: 1,
    }]));
    server = await serve(tmp.dir, { appsFile });
    client = await SkiffClient.connect(server.wsUrl);
  });
  after(async () => {
    await client?.close();
    await server?.close();
    tmp.cleanup();
  });

  it('counts every query under load; counters only grow while being scraped', async () => {
    const before = await scrape();
    const N = 1500;
    const answers = Promise.all(Array.from({ length: N }, () => client.infer({ model: 'clf', inputs: [uniqueInput()] })));
    // Scrape repeatedly while the queries are queued and running.
    const during: Scrape[] = [];
    let done = false;
    void answers.then(() => (done = true));
    while (!done) {
      during.push(await scrape());
      await new Promise((r) => setTimeout(r, 5));
    }
    const results = await answers;
    assert.equal(results.filter((r) => r.error).length, 0, 'every query answered');
    const after = await scrape();
    assert.ok(during.length >= 1, 'scraped while the load ran');
    let prev = before;
    for (const s of [...during, after]) {
      for (const name of ['skiff_model_queries_total', 'skiff_model_batches_total', 'skiff_model_latency_seconds_count']) {
        assert.ok(s.sum(name, clf) >= prev.sum(name, clf), `${name} never decreases`);
      }
      prev = s;
    }
    const delta = (name: string, labels: Record<string, string> = clf): number => after.sum(name, labels) - before.sum(name, labels);
    assert.equal(delta('skiff_model_queries_total', { ...clf, code: 'OK' }), N);
    assert.equal(delta('skiff_model_queries_total'), N, 'no other outcome');
    assert.equal(delta('skiff_model_latency_seconds_count'), N);
    assert.equal(delta('skiff_model_cache_misses_total'), N, 'unique inputs all ran');
    assert.equal(delta('skiff_model_batch_size_rows_sum'), N, 'every row ran in some batch');
    const batches = delta('skiff_model_batches_total');
    assert.ok(batches >= Math.ceil(N / 32) && batches < N, `batched: ${batches} batches for ${N} rows`);
    assert.equal(delta('skiff_model_batch_size_rows_count'), batches);
    assert.equal(delta('skiff_model_queue_wait_seconds_count'), N);
    assert.equal(delta('skiff_model_batch_run_seconds_count'), batches);
    assert.equal(delta('skiff_model_compute_seconds_count'), batches);
  });

  it('histograms are cumulative, end at +Inf = count, and agree with the HDR percentiles', async () => {
    const s = await scrape();
    for (const name of ['skiff_model_latency_seconds', 'skiff_model_queue_wait_seconds', 'skiff_model_batch_run_seconds', 'skiff_model_batch_size_rows']) {
      const buckets = s.series(`${name}_bucket`, clf);
      assert.ok(buckets.length > 2, `${name} has buckets`);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${name} buckets are cumulative`);
      assert.equal(buckets.at(-1)!.labels.le, '+Inf');
      assert.equal(buckets.at(-1)!.value, s.sum(`${name}_count`, clf));
    }
    // The bucket holding the median must contain the HDR median.
    const h = server.registry.resolve('clf').executor!.latency.endToEndUs;
    const count = s.sum('skiff_model_latency_seconds_count', clf);
    const buckets = s.series('skiff_model_latency_seconds_bucket', clf);
    const i = buckets.findIndex((b) => b.value >= count / 2);
    const p50 = h.getValueAtPercentile(50) / 1e6;
    assert.ok(p50 <= Number(buckets[i]!.labels.le) * 1.001, `HDR p50 ${p50}s is within bucket le=${buckets[i]!.labels.le}`);
    if (i > 0) assert.ok(p50 > Number(buckets[i - 1]!.labels.le) * 0.999, `HDR p50 ${p50}s is above le=${buckets[i - 1]!.labels.le}`);
  });

  it('cache hits grow by the number of repeated inputs', async () => {
    const before = await scrape();
    const input = uniqueInput();
    assert.equal((await client.infer({ model: 'clf', inputs: [input] })).error, undefined);
    const repeats = await Promise.all(Array.from({ length: 40 }, () => client.infer({ model: 'clf', inputs: [input] })));
    assert.ok(repeats.every((r) => !r.error));
    const after = await scrape();
    assert.equal(after.sum('skiff_model_cache_hits_total', clf) - before.sum('skiff_model_cache_hits_total', clf), 40);
    assert.equal(after.sum('skiff_model_cache_misses_total', clf) - before.sum('skiff_model_cache_misses_total', clf), 1);
    assert.equal(after.sum('skiff_model_queries_total', { ...clf, code: 'OK' }) - before.sum('skiff_model_queries_total', { ...clf, code: 'OK' }), 41);
    assert.ok(after.sum('skiff_model_cache_entries', clf) >= 1);
  });

  it('exposes queue depth, the AIMD cap and its ceiling, replicas, restarts and version state', async () => {
    const s = await scrape();
    assert.equal(s.series('skiff_model_queue_depth_rows', clf).length, 1);
    assert.equal(s.sum('skiff_model_queue_depth_rows', clf), 0, 'idle: nothing queued');
    const cap = s.sum('skiff_model_batch_cap_rows', clf);
    assert.ok(cap >= 1 && cap <= 32, `cap ${cap} within [1, max_batch_size]`);
    assert.equal(cap, server.registry.resolve('clf').executor!.batchCap);
    assert.equal(s.sum('skiff_model_max_batch_rows', clf), 32);
    assert.equal(s.sum('skiff_model_replicas', clf), 1);
    assert.equal(s.sum('skiff_model_worker_restarts_total', clf), 0);
    assert.equal(s.sum('skiff_model_version_state', { ...clf, state: 'ready' }), 1);
    assert.equal(s.sum('skiff_model_version_current', clf), 1);
    assert.equal(s.sum('skiff_model_admission_refusals_total', clf), 0);
    assert.equal(s.series('skiff_event_loop_lag_p99_seconds').length, 1);
    const lag = s.sum('skiff_event_loop_lag_p99_seconds');
    assert.ok(Number.isFinite(lag) && lag >= 0 && lag < 1, `event-loop lag p99 ${lag} s is a measured, sane value`);
    assert.equal(s.sum('skiff_ws_connections'), 1);
  });

  it('counts a bad request under its error code, and an unknown model as unresolved', async () => {
    const before = await scrape();
    const bad = await postJson(`${server.url}/v2/models/clf/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'INVALID_INPUT');
    const unknown = await client.infer({ model: 'nope', inputs: [uniqueInput()] });
    assert.equal(unknown.error?.code, 'MODEL_NOT_FOUND');
    const after = await scrape();
    assert.equal(after.sum('skiff_model_queries_total', { ...clf, code: 'INVALID_INPUT' }) - before.sum('skiff_model_queries_total', { ...clf, code: 'INVALID_INPUT' }), 1);
    assert.equal(after.sum('skiff_queries_unresolved_total', { code: 'MODEL_NOT_FOUND' }) - before.sum('skiff_queries_unresolved_total', { code: 'MODEL_NOT_FOUND' }), 1);
    assert.equal(after.sum('skiff_model_queries_total', { ...clf, code: 'OK' }), before.sum('skiff_model_queries_total', { ...clf, code: 'OK' }), 'no OK answer added');
  });

  it('counts a worker that died and was replaced, and the query it failed', async () => {
    const exiter = { model: 'exiter', version: '1' };
    const four = (x0: number): Tensor => ({ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(new Float32Array([x0, 1, 2, 3])) });
    const before = await scrape();
    assert.equal(before.sum('skiff_model_worker_restarts_total', exiter), 0);
    const poisoned = await client.infer({ model: 'exiter', inputs: [four(666)] });
    assert.equal(poisoned.error?.code, 'MODEL_ERROR');
    const healthy = await client.infer({ model: 'exiter', inputs: [four(1)] });
    assert.equal(healthy.error, undefined, 'the replaced worker serves');
    const after = await scrape();
    assert.equal(after.sum('skiff_model_worker_restarts_total', exiter), 1);
    assert.equal(after.sum('skiff_model_queries_total', { ...exiter, code: 'MODEL_ERROR' }), 1);
    assert.equal(after.sum('skiff_model_queries_total', { ...exiter, code: 'OK' }), 1);
    assert.equal(after.sum('skiff_model_version_state', { ...exiter, state: 'ready' }), 1);
  });

  it('counts application queries, latency and selection weights', async () => {
    const before = await scrape();
    const M = 30;
    const answers = await Promise.all(Array.from({ length: M }, () => client.infer({ app: 'clfapp', inputs: [appInput()] })));
    assert.ok(answers.every((a) => !a.error));
    const after = await scrape();
    const app = { app: 'clfapp' };
    assert.equal(after.sum('skiff_app_queries_total', { ...app, code: 'OK' }) - before.sum('skiff_app_queries_total', { ...app, code: 'OK' }), M);
    assert.equal(after.sum('skiff_app_latency_seconds_count', app) - before.sum('skiff_app_latency_seconds_count', app), M);
    assert.equal(after.sum('skiff_app_slo_seconds', app), 0.1);
    const weights = after.series('skiff_app_selection_weight', app);
    assert.deepEqual(weights.map((w) => w.labels.arm), ['clf']);
    assert.ok(Math.abs(weights[0]!.value - 1) < 1e-9, 'one arm takes every selection');
    // The app's arm queries reached the model layer too.
    assert.ok(after.sum('skiff_model_queries_total', clf) - before.sum('skiff_model_queries_total', clf) >= M);
  });

  it('OIP statistics (Triton shape) match the Prometheus counters', async () => {
    await Promise.all(Array.from({ length: 50 }, () => client.infer({ model: 'clf', inputs: [uniqueInput()] })));
    const s = await scrape();
    const { status, json } = await getJson(`${server.url}/v2/models/clf/stats`);
    assert.equal(status, 200);
    assert.equal(json.model_stats.length, 1);
    const st = json.model_stats[0];
    assert.equal(st.name, 'clf');
    assert.equal(st.version, '1');
    assert.ok(st.last_inference > Date.now() - 60_000 && st.last_inference <= Date.now(), 'last_inference is a recent wall-clock time');
    assert.equal(st.inference_stats.success.count, s.sum('skiff_model_queries_total', { ...clf, code: 'OK' }));
    const failed = s.sum('skiff_model_queries_total', clf) - s.sum('skiff_model_queries_total', { ...clf, code: 'OK' });
    assert.equal(st.inference_stats.fail.count, failed);
    assert.equal(st.execution_count, s.sum('skiff_model_batches_total', clf));
    assert.equal(st.inference_count, s.sum('skiff_model_batch_size_rows_sum', clf));
    assert.equal(st.inference_stats.queue.count, s.sum('skiff_model_queue_wait_seconds_count', clf));
    assert.equal(st.inference_stats.compute_infer.count, s.sum('skiff_model_compute_seconds_count', clf));
    assert.equal(st.inference_stats.cache_hit.count, s.sum('skiff_model_cache_hits_total', clf));
    assert.equal(st.inference_stats.cache_miss.count, s.sum('skiff_model_cache_misses_total', clf));
    assert.ok(st.inference_stats.success.ns > 0 && st.inference_stats.queue.ns > 0 && st.inference_stats.compute_infer.ns > 0);
    // Durations agree with the Prometheus sums (both from the same HDR histograms).
    assert.ok(Math.abs(st.inference_stats.compute_infer.ns / 1e9 - s.sum('skiff_model_compute_seconds_sum', clf)) < 1e-6);
    let executions = 0;
    let rows = 0;
    for (const b of st.batch_stats) {
      assert.ok(b.batch_size >= 1 && b.batch_size <= 32);
      executions += b.compute_infer.count;
      rows += b.batch_size * b.compute_infer.count;
    }
    assert.equal(executions, st.execution_count);
    assert.equal(rows, st.inference_count);
    const one = await getJson(`${server.url}/v2/models/clf/versions/1/stats`);
    assert.deepEqual(one.json.model_stats.map((m: { name: string; version: string }) => `${m.name}:${m.version}`), ['clf:1']);
    const all = await getJson(`${server.url}/v2/models/stats`);
    assert.ok(all.json.model_stats.some((m: { name: string }) => m.name === 'clf'));
    assert.equal((await getJson(`${server.url}/v2/models/nope/stats`)).json.code, 'MODEL_NOT_FOUND');
    assert.equal((await getJson(`${server.url}/v2/models/clf/versions/9/stats`)).json.code, 'VERSION_NOT_FOUND');
  });

  it('Clipper JSON metrics: counters, ratio counters, meters and histograms with percentiles', async () => {
    const s = await scrape();
    const { status, json } = await getJson(`${server.url}/clipper/metrics`);
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(json).sort(), ['counters', 'histograms', 'meters', 'ratio_counters']);
    const find = (list: Record<string, any>[], name: string): any => list.find((e) => Object.keys(e)[0] === name)?.[name];
    assert.equal(find(json.counters, 'model:clf:1:num_predictions').count, s.sum('skiff_model_queries_total', clf));
    assert.equal(find(json.counters, 'app:clfapp:num_predictions').count, s.sum('skiff_app_queries_total', { app: 'clfapp' }));
    const ratio = find(json.ratio_counters, 'model:clf:1:cache_hit_ratio').ratio;
    assert.ok(ratio > 0 && ratio < 1, `cache hit ratio ${ratio}`);
    assert.equal(find(json.ratio_counters, 'app:clfapp:default_prediction_ratio').ratio, 0);
    const meter = find(json.meters, 'model:clf:1:prediction_throughput');
    assert.deepEqual(Object.keys(meter).sort(), ['rate', 'rate_15min', 'rate_1min', 'rate_5min', 'unit']);
    assert.ok(meter.rate > 0, 'queries since the server started give a mean rate');
    const lat = find(json.histograms, 'app:clfapp:prediction_latency');
    assert.equal(lat.unit, 'microseconds');
    assert.equal(lat.size, s.sum('skiff_app_latency_seconds_count', { app: 'clfapp' }));
    assert.ok(lat.min <= lat.p50 && lat.p50 <= lat.p95 && lat.p95 <= lat.p99 && lat.p99 <= lat.max);
    const batch = find(json.histograms, 'model:clf:1:batch_size');
    assert.equal(batch.unit, 'queries');
    assert.ok(batch.p99 >= 1 && batch.p99 <= 32);
    assert.ok(find(json.histograms, 'model:clf:1:prediction_latency').size > 0);
  });

  it('dashboard feed frames report the interval\'s rate and percentiles', async () => {
    const feed = new DashboardFeed(() => collectStats({
      models: server.registry, apps: server.apps, appStats: server.appQueries, rejected: server.queries.rejected,
      connections: () => 0, toWallMs: (t) => t,
    }, { p50Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0, samples: 0 }), { intervalMs: 1000, historyLength: 10 });
    feed.tick(1000);
    const K = 120;
    await Promise.all(Array.from({ length: K }, () => client.infer({ model: 'clf', inputs: [uniqueInput()] })));
    const f = feed.tick(3000);
    assert.equal(f.dt, 2);
    const m = f.models.find((p) => p.id === 'clf:1')!;
    assert.equal(m.qps, K / 2, 'queries over the 2 s interval');
    assert.equal(m.cacheHitRate, 0, 'unique inputs: no hits');
    assert.ok(m.meanBatch >= 1 && m.meanBatch <= 32);
    assert.ok(m.p50Ms > 0 && m.p50Ms <= m.p99Ms, `p50 ${m.p50Ms} <= p99 ${m.p99Ms}`);
    const h = server.registry.resolve('clf').executor!.latency.endToEndUs;
    assert.ok(m.p99Ms <= h.maxValue / 1000 * 1.001, 'interval p99 within what the histogram holds');
    const idle = feed.tick(4000);
    assert.equal(idle.models.find((p) => p.id === 'clf:1')!.qps, 0, 'no traffic, no rate');
    assert.equal(idle.models.find((p) => p.id === 'clf:1')!.cacheHitRate, null);
    assert.equal(f.apps[0]!.name, 'clfapp');
    assert.deepEqual(Object.keys(f.apps[0]!.weights), ['clf']);
    assert.equal(f.health.find((v) => v.id === 'clf:1')!.state, 'ready');
  });
});

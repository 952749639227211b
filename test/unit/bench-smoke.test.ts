/**
 * Smoke test of the benchmark machinery (bench/), so it cannot rot: a few short runs of the
 * load generator against a real server (both protocols, open and closed loop, a cache-hit
 * payload, the echo baseline in a child process) and the results folder. Nothing here asserts
 * speed: only that the accounting adds up, percentiles are ordered and the files are written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoadGenerator } from '../../bench/lib/loadgen.js';
import { writeBenchModel } from '../../bench/lib/models.js';
import { buildRows, CacheHitPolicy } from '../../bench/lib/payload.js';
import { frameTemplates, httpTemplates, stampFrame, stampHttp } from '../../bench/lib/templates.js';
import { parseResponse } from '../../bench/lib/http1.js';
import { spawnChild } from '../../bench/lib/child.js';
import { seriesOf, writeResults } from '../../bench/lib/report.js';
import type { LoadResult, LoadSpec } from '../../bench/lib/spec.js';
import type { Percentiles } from '../../bench/lib/histogram.js';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import { parseInferRequest } from '../../src/protocol/oip-decode.js';
import { serve, tempDir } from '../integration/helpers.js';

function assertOrdered(p: Percentiles, what: string): void {
  const seq = [p.p50, p.p90, p.p99, p.p999, p.max];
  for (let i = 1; i < seq.length; i++) assert.ok(seq[i - 1]! <= seq[i]!, `${what}: percentiles out of order ${JSON.stringify(p)}`);
}

function assertAccounting(r: LoadResult): void {
  assert.ok(r.sent > 0, `${r.label}: nothing sent`);
  assert.equal(r.sent, r.ok + r.defaults + r.errors, `${r.label}: sent != answered + errors`);
  assert.equal(r.errors, 0, `${r.label}: errors ${JSON.stringify(r.errorCodes)}`);
  assert.equal(r.latencyUs.count >= r.ok + r.defaults, true, `${r.label}: fewer latencies than answers`);
  assert.ok(r.throughput > 0);
  assertOrdered(r.latencyUs, `${r.label} latency`);
  assertOrdered(r.rawLatencyUs, `${r.label} raw latency`);
}

test('request templates: stamped ids and markers decode as sent', () => {
  const input = { name: 'input', rowShape: [784] };
  const rows = buildRows({ source: 'dataset', poolSize: 8, cacheHitRate: 0.5 }, input, 1);
  assert.equal(rows.count, 8);
  const [t] = frameTemplates({ model: 'm', timeoutUs: 5000, input, rows, k: 3, maxFrames: 1 });
  const bytes = stampFrame(t!, 2 ** 33 + 7, [undefined, [1234567, 7654321], undefined]);
  const f = decodeFrame(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  assert.deepEqual(f.requests.map((r) => r.id), [2n ** 33n + 7n, 2n ** 33n + 8n, 2n ** 33n + 9n]);
  assert.ok(f.requests.every((r) => r.model === 'm' && r.timeoutUs === 5000 && !r.error));
  const x = (j: number) => new Float32Array(f.requests[j]!.inputs[0]!.data.slice().buffer);
  assert.deepEqual([x(1)[0], x(1)[1]], [1234567, 7654321]);
  assert.deepEqual(x(0), rows.data.slice(0, 784));
  assert.deepEqual(x(2)[5], rows.data[2 * 784 + 5]);

  const http = httpTemplates({ host: 'h:1', model: 'm', timeoutUs: 0, input, rows, marked: true });
  const req = stampHttp(http.marked[3]!, [2000001, 3000002]);
  const head = req.indexOf('\r\n\r\n');
  const body = parseInferRequest(new Uint8Array(req.subarray(head + 4)), undefined, { maxElements: 1 << 20 });
  const v = new Float32Array(body.inputs[0]!.data.slice().buffer);
  assert.deepEqual([v[0], v[1], v[2]], [2000001, 3000002, rows.data[3 * 784 + 2]]);

  // A policy with h = 0 never repeats; markers are distinct.
  const p = new CacheHitPolicy(0, 3, 1);
  const seen = new Set(Array.from({ length: 1000 }, () => p.next()!.join(',')));
  assert.equal(seen.size, 1000);
});

test('HTTP/1.1 response parser: content-length, chunked, incomplete', () => {
  const chunked = Buffer.from('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nHTTP/1.1');
  const r = parseResponse(chunked);
  assert.ok(r && !(r instanceof Error));
  assert.equal(r.status, 404);
  assert.equal(r.body.toString(), 'abcde');
  assert.equal(chunked.subarray(r.consumed).toString(), 'HTTP/1.1');
  assert.equal(parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')), null);
  assert.ok(parseResponse(Buffer.from('garbage\r\n\r\n')) instanceof Error);
});

test('load generator: both protocols, open and closed loop, cache-hit payload, echo baseline, results folder', async (t) => {
  const repo = tempDir('skiff-bench-smoke-');
  const out = tempDir('skiff-bench-out-');
  const model = writeBenchModel(repo.dir, 'tiny', 'tiny', { cache_bytes: 4 * 1024 * 1024 });
  const server = await serve(repo.dir);
  const gen = await LoadGenerator.start(2);
  const echo = await spawnChild(new URL('../../bench/baselines/uws-echo.js', import.meta.url));
  t.after(async () => {
    await gen.close();
    await echo.stop();
    await server.close();
    repo.cleanup();
    out.cleanup();
  });
  const spec = (protocol: LoadSpec['target']['protocol'], mode: LoadSpec['mode'], extra: Partial<LoadSpec> = {}): LoadSpec => ({
    target: { protocol, url: protocol === 'http' ? server.url : protocol === 'ws' ? server.wsUrl : `ws://127.0.0.1:${echo.ready.port}/ws`, model: 'tiny', timeoutUs: 0 },
    input: model.input,
    payload: { source: 'dataset', poolSize: 64 },
    mode,
    requestsPerFrame: 1,
    connections: 2,
    warmupMs: 200,
    durationMs: 700,
    drainMs: 5000,
    seed: 1,
    ...extra,
  });
  const runs: LoadResult[] = [];
  const run = async (label: string, s: LoadSpec): Promise<LoadResult> => {
    const r = await gen.run(s, { label });
    assertAccounting(r);
    runs.push(r);
    return r;
  };
  const closedWs = await run('ws closed', spec('ws', { kind: 'closed', concurrency: 8 }, { requestsPerFrame: 4 }));
  assert.ok(closedWs.expectedIntervalUs! > 0, 'closed loop: warm-up median used as the correction interval');
  assert.equal(closedWs.sent % 4, 0, 'whole frames of 4');
  const openWs = await run('ws open', spec('ws', { kind: 'open', rate: 400 }));
  assert.ok(openWs.generator.sendLagUs && openWs.offeredRate === 400);
  await run('http closed', spec('http', { kind: 'closed', concurrency: 4 }));
  await run('http open', spec('http', { kind: 'open', rate: 300 }, { connections: 8 }));
  await run('echo closed', spec('ws-echo', { kind: 'closed', concurrency: 2 }));

  const ex = server.registry.resolve('tiny').executor!;
  const before = { ...ex.counters };
  const cached = await run('ws cache-hit 0.5', spec('ws', { kind: 'closed', concurrency: 8 }, { payload: { source: 'dataset', poolSize: 16, cacheHitRate: 0.5 } }));
  const hits = ex.counters.cacheHits - before.cacheHits;
  const queries = ex.counters.queries - before.queries;
  assert.ok(hits > 0 && hits < queries, `cache hits ${hits} of ${queries}: the pool repeats, the rest is unique`);
  assert.ok(cached.sent <= queries);

  const folder = writeResults(join(out.dir, 'run'), {
    title: 'smoke', markdown: 'smoke\n', json: { runs }, runs,
    series: seriesOf(runs.map((r) => ({ series: r.protocol, result: r }))),
  });
  for (const f of folder.files) assert.ok(existsSync(f), `${f} written`);
  const json = JSON.parse(readFileSync(folder.files[0]!, 'utf8')) as { runs: LoadResult[] };
  assert.equal(json.runs.length, runs.length);
  assert.match(readFileSync(folder.files[1]!, 'utf8'), /\| ws closed \|/);
  assert.match(readFileSync(folder.files[2]!, 'utf8'), /^<svg[^>]*>[\s\S]*<path d="M/);
});

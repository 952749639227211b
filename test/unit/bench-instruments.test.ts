/**
 * The benchmark's per-query instruments: the .cpuprofile reader (self/total time, categories,
 * time windows, the flame graph and the table), the GC/allocation summary, the main-thread CPU
 * reading from /proc, and the probe end to end (a short load against the bench's server host
 * with SKIFF_BENCH_STATS=1). Nothing here asserts speed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frameCategory, profileMarkdown, shortUrl, summarizeProfile, type CpuProfile } from '../../bench/lib/cpuprofile.js';
import { flameGraphSvg } from '../../bench/lib/flame.js';
import { mainThreadProfile } from '../../bench/lib/profile-report.js';
import { describeServerWindow, gcKind, pauseSummary, perQuery, summarizeHeap, threadCpuNs, type GcRecord } from '../../bench/lib/server-stats.js';
import { BenchContext } from '../../bench/lib/context.js';
import { describeGaps, LoopGaps, summarizeGaps } from '../../bench/lib/loop-gaps.js';
import { LoadGenerator } from '../../bench/lib/loadgen.js';
import { writeBenchModel } from '../../bench/lib/models.js';
import { tempDir } from '../integration/helpers.js';

const ROOT = 'file:///repo/dist/';
const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber, scriptId: 0, columnNumber: 0 });

/**
 * root
 * ├─ (idle)                                     samples: 2 x 100 µs
 * ├─ (garbage collector)                        1 x 100
 * └─ message  src/frontend/ws.js                1 x 100 self
 *    ├─ decode  src/protocol/wire-decode.js     2 x 100
 *    └─ submit  src/engine/executor.js          0 self
 *       ├─ set  (builtin, no url)               1 x 100   -> engine (its caller)
 *       └─ submit (recursion)                   1 x 100   -> engine; total of submit counted once
 */
function handBuilt(): CpuProfile {
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('(garbage collector)') },
      { id: 4, callFrame: frame('message', `${ROOT}src/frontend/ws.js`, 10), children: [5, 6] },
      { id: 5, callFrame: frame('decode', `${ROOT}src/protocol/wire-decode.js`, 20) },
      { id: 6, callFrame: frame('submit', `${ROOT}src/engine/executor.js`, 30), children: [7, 8] },
      { id: 7, callFrame: frame('set') },
      { id: 8, callFrame: frame('submit', `${ROOT}src/engine/executor.js`, 30) },
    ],
    startTime: 1_000_000,
    endTime: 1_000_800,
    // Sample times 1_000_000, +100 each.
    samples: [2, 4, 5, 5, 7, 8, 3, 2],
    timeDeltas: [0, 100, 100, 100, 100, 100, 100, 100],
  };
}

test('cpuprofile reader: self and total time, categories leaf-first, recursion once, windows', () => {
  const s = summarizeProfile(handBuilt());
  assert.equal(s.samples, 8);
  assert.equal(s.totalUs, 800);
  const fn = (name: string) => s.functions.find((f) => f.name === name)!;
  assert.equal(fn('decode').selfUs, 200);
  assert.equal(fn('decode').where, 'src/protocol/wire-decode.js:21');
  assert.equal(fn('message').selfUs, 100);
  assert.equal(fn('message').totalUs, 500);
  assert.equal(fn('submit').selfUs, 100);
  assert.equal(fn('submit').totalUs, 200, 'a recursive function counts once per sample');
  assert.equal(fn('set').category, 'engine', 'a builtin counts toward its caller');
  assert.deepEqual(s.categories, { 'uWS/IO': 0, 'FlatBuffers/JSON decode/encode': 200, engine: 200, frontend: 100, GC: 100, idle: 200, other: 0 });
  assert.equal(s.functions[0]!.selfUs >= s.functions[1]!.selfUs, true, 'sorted by self time');
  // The flame tree carries the same time as the samples.
  assert.equal(s.flame.valueUs, 800);
  assert.equal(s.flame.children.find((c) => c.name.startsWith('message'))!.valueUs, 500);

  // A window [1_000_200, 1_000_500) holds samples 2..4: decode, decode, set.
  const w = summarizeProfile(handBuilt(), [1_000_200, 1_000_500]);
  assert.equal(w.samples, 3);
  assert.equal(w.categories['FlatBuffers/JSON decode/encode'], 200);
  assert.equal(w.categories.engine, 100);
  assert.equal(w.categories.idle, 0);

  const md = profileMarkdown('T4', s, 3);
  assert.match(md, /\| FlatBuffers\/JSON decode\/encode \| 0\.2 \| 25\.0% \|/);
  assert.equal(md.split('\n').filter((l) => /^\| [0-9]+ \| `/.test(l)).length, 3, 'top n rows');
  const svg = flameGraphSvg('a <title> & more', s.flame);
  assert.match(svg, /^<\?xml/);
  assert.ok(svg.includes('a &lt;title&gt; &amp; more'));
  assert.ok((svg.match(/<rect /g) ?? []).length >= 8, 'frames drawn');
});

test('cpuprofile reader: URLs and frame categories', () => {
  assert.equal(shortUrl('file:///work/wt/bench/dist/src/engine/pool.js'), 'src/engine/pool.js');
  assert.equal(shortUrl('file:///x/node_modules/flatbuffers/js/builder.js'), 'flatbuffers/js/builder.js');
  assert.equal(frameCategory(frame('x', 'file:///x/node_modules/flatbuffers/js/builder.js')), 'FlatBuffers/JSON decode/encode');
  assert.equal(frameCategory(frame('(program)')), 'uWS/IO');
  assert.equal(frameCategory(frame('x', 'node:net')), 'uWS/IO');
  assert.equal(frameCategory(frame('x', `${ROOT}src/http/util.js`)), 'frontend');
  assert.equal(frameCategory(frame('x', 'node:internal/timers')), null);
  const d = tempDir('skiff-prof-');
  try {
    mkdirSync(join(d.dir, 'p'));
    for (const n of ['CPU.20260101.101010.42.1.002.cpuprofile', 'CPU.20260101.101010.42.0.001.cpuprofile', 'CPU.20260101.101010.7.0.001.cpuprofile']) writeFileSync(join(d.dir, 'p', n), '{}');
    assert.equal(mainThreadProfile(join(d.dir, 'p'), 42), join(d.dir, 'p', 'CPU.20260101.101010.42.0.001.cpuprofile'));
    assert.equal(mainThreadProfile(join(d.dir, 'p'), 43), null);
  } finally {
    d.cleanup();
  }
});

test('GC and allocation summary: bytes allocated = heap growth + what GCs freed; pauses by kind', () => {
  const rec = (gcType: string, cost: number, before: number, after: number): GcRecord => ({ gcType, cost, beforeGC: { heapStatistics: { usedHeapSize: before } }, afterGC: { heapStatistics: { usedHeapSize: after } } });
  const h = summarizeHeap([rec('Scavenge', 500, 3000, 1000), rec('Scavenge', 1500, 4000, 2000), rec('MarkSweepCompact', 8000, 5000, 500), rec('IncrementalMarking', 200, 600, 600)], 1000, 1500, [10, 20]);
  assert.equal(h.allocatedBytes, 500 + 2000 + 2000 + 4500);
  assert.equal(h.gc.scavenge.count, 2);
  assert.equal(h.gc.scavenge.maxMs, 1.5);
  assert.equal(h.gc.scavenge.p50Ms, 0.5);
  assert.equal(h.gc['mark-compact'].count, 1);
  assert.equal(h.gc.incremental.count, 1);
  assert.equal(h.gcAll.count, 4);
  assert.equal(h.gcAll.totalMs, 10.2);
  assert.equal(gcKind('MinorMarkSweep'), 'scavenge');
  assert.deepEqual(pauseSummary([]), { count: 0, totalMs: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 });
  const w = perQuery(4_000_000, 1000, 1000, h);
  assert.equal(w.cpuUsPerQuery, 4);
  assert.equal(w.cpuShare, 0.004);
  assert.equal(w.bytesPerQuery, 9);
  assert.match(describeServerWindow(w), /4\.00 µs\/query .* 9 B\/query allocated; GC scavenge 2/);
});

test('loop gaps: the latest 1% of ticks split into running, waiting for a CPU, blocked, and GC', () => {
  // 200 ticks [start, end, running, waiting]: 197 on time, one 5 ms gap, one 30 ms gap (10
  // running, 15 waiting, a 4 ms GC inside), one 12 ms gap (all running).
  const ticks: number[] = [];
  let t = 0;
  for (let i = 0; i < 197; i++) {
    ticks.push(t, t + 1, 0.1, 0);
    t += 1;
  }
  ticks.push(t, t + 5, 5, 0);
  t += 5;
  ticks.push(t, t + 30, 10, 15);
  const gcAt = t + 5;
  t += 30;
  ticks.push(t, t + 12, 12, 0);
  const s = summarizeGaps(ticks, [[gcAt, gcAt + 4], [0.2, 0.3]]);
  assert.equal(s.ticks, 200);
  assert.equal(s.lateMaxMs, 29);
  assert.equal(s.lateP99Ms, 4); // nearest rank: the 198th of 200
  assert.equal(s.lateP50Ms, 0);
  assert.deepEqual(s.worst, { ticks: 2, gapMs: 42, runningMs: 22, gcMs: 4, waitingMs: 15, otherMs: 5 });
  assert.match(describeGaps(s), /\(2 of 200\): 42 ms in all: main thread running 52%, waiting for a CPU 36%, asleep or blocked 12%; GC pauses 10%/);
});

test('loop gaps recorded live: a 60 ms busy turn is the latest tick, and the thread ran through it', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
  const g = new LoopGaps();
  assert.ok(g.start());
  await new Promise((r) => setTimeout(r, 30));
  const until = performance.now() + 60;
  while (performance.now() < until);
  await new Promise((r) => setTimeout(r, 30));
  const s = g.stop()!;
  assert.ok(s.ticks >= 10, `${s.ticks} ticks`);
  assert.ok(s.lateMaxMs >= 59, `latest tick ${s.lateMaxMs} ms late`);
  // The worst 1% is that one tick: the thread ran (or, on a busy machine, waited for a CPU)
  // through it. Allowed as neither: the timer's period before the loop, and the kernel's lag in
  // bringing a running thread's times up to date (one scheduler tick, 4 ms at HZ 250, at each end).
  assert.equal(s.worst.ticks, 1);
  assert.ok(s.worst.otherMs <= 10, JSON.stringify(s.worst));
  assert.ok(s.worst.runningMs + s.worst.waitingMs >= s.worst.gapMs - 10, JSON.stringify(s.worst));
  assert.equal(g.stop(), null);
});

test('main-thread CPU from /proc: the main thread of this process, growing as it works', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  const a = threadCpuNs(process.pid);
  assert.ok(Number.isFinite(a) && a > 0);
  const until = performance.now() + 50;
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  assert.ok(x > 0);
  const b = threadCpuNs(process.pid);
  assert.ok(b - a >= 20e6, `50 ms of spinning read as ${(b - a) / 1e6} ms`);
});

test('probe end to end: a short load against the bench host reports CPU, bytes and GC per query', async (t) => {
  const repo = tempDir('skiff-bench-probe-');
  const gen = await LoadGenerator.start(1);
  const ctx = new BenchContext(true, gen);
  t.after(async () => {
    await ctx.close();
    await gen.close();
    repo.cleanup();
  });
  const m = writeBenchModel(repo.dir, 'identity', 'identity', { max_batch_size: 64 });
  const host = await ctx.child(new URL('../../bench/servers/skiff-host.js', import.meta.url), [repo.dir], undefined, undefined, { ...process.env, SKIFF_BENCH_STATS: '1' });
  const spec = ctx.spec({ protocol: 'ws', url: `ws://127.0.0.1:${host.ready.port}/ws`, model: m.name, timeoutUs: 0 }, m.input, { kind: 'closed', concurrency: 8 }, { warmupMs: 200, durationMs: 600, connections: 1 });
  const r = await ctx.load('probe', spec, { probe: host });
  assert.ok(r.server, 'the run was probed');
  assert.equal(r.server.queries, r.ok + r.defaults);
  assert.ok(r.server.queries > 0);
  assert.ok(Number.isFinite(r.server.cpuUsPerQuery) && r.server.cpuUsPerQuery > 0);
  assert.ok(r.server.heap && r.server.heap.allocatedBytes > 0);
  assert.ok(r.server.bytesPerQuery! > 0);
  assert.ok(r.server.heap.monoUs[1] > r.server.heap.monoUs[0]);
  // Without a window in progress, statsStop answers null.
  assert.equal(await host.call('statsStop'), null);
  // T7 starts fresh hosts beside the runner's: another one comes up beside this one (a host
  // binds no fixed port, the admin API's included).
  const second = await ctx.child(new URL('../../bench/servers/skiff-host.js', import.meta.url), [repo.dir]);
  assert.ok(second.ready.port! > 0 && second.ready.port !== host.ready.port);
});

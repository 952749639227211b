/**
 * The per-model executor against REAL worker threads (piscina + SharedArrayBuffer rings), with
 * fixture models written to a temp dir: an ONNX classifier, a fixed-shape ONNX model and a JS
 * model that blocks its worker for a fixed time per batch.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import type { ErrorInfo } from '../../src/errors.js';
import { Executor, type ExecutorConfig, type QueryHandle } from '../../src/engine/executor.js';
import { WorkerRunner, type WorkerRunnerOptions as PoolOptions } from '../../src/engine/worker-runner.js';
import { writeClassifier, writeDelayModel, writeFaultyModel, writeFixedShape, type ModelFixture } from '../../src/modelgen/fixtures.js';
import { Prng } from '../../src/modelgen/prng.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const TOL = 1e-5;
const DIM = 16;
const CLASSES = 5;
const DELAY_MS = 20;
const TEST = { timeout: 15_000 };

// ---------------------------------------------------------------------------------------------
// Helpers

interface Answer {
  err: ErrorInfo | null;
  outputs?: Tensor[];
  /** Answered before infer() returned. */
  sync: boolean;
  at: number;
}

interface Asked {
  handle: QueryHandle;
  answer: Promise<Answer>;
  /** How many times `done` has been called so far. */
  calls(): number;
}

function ask(ex: Executor, inputs: Tensor[], rows: number, deadline = performance.now() + 10_000): Asked {
  let returned = false;
  let calls = 0;
  let resolve!: (a: Answer) => void;
  const answer = new Promise<Answer>((r) => (resolve = r));
  const handle = ex.infer(inputs, rows, deadline, (err, outputs) => {
    calls++;
    resolve({ err, outputs, sync: !returned, at: performance.now() });
  });
  returned = true;
  return { handle, answer, calls: () => calls };
}

function f32Tensor(name: string, shape: number[], data: Float32Array): Tensor {
  return { name, datatype: 'FP32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function randomRows(prng: Prng, rows: number, dim: number): Float32Array {
  return prng.fill(rows * dim, (p) => p.uniform(-2, 2));
}

const asF32 = (t: Tensor): Float32Array => new Float32Array(t.data.slice().buffer);
const asI64 = (t: Tensor): BigInt64Array => new BigInt64Array(t.data.slice().buffer);

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= TOL, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Check a classifier answer against the fixture's JS reference for the same rows. */
function assertClassifier(fx: ModelFixture, x: Float32Array, rows: number, a: Answer): void {
  assert.equal(a.err, null, `unexpected error ${JSON.stringify(a.err)}`);
  const ref = fx.forward({ input: { datatype: 'FP32', shape: [rows, DIM], data: x } });
  const [probs, label] = a.outputs!;
  assert.equal(probs!.name, 'probabilities');
  assert.equal(probs!.datatype, 'FP32');
  assert.deepEqual(probs!.shape, [rows, CLASSES]);
  assertClose(asF32(probs!), ref.probabilities!.data as Float32Array, 'probabilities');
  assert.equal(label!.name, 'label');
  assert.equal(label!.datatype, 'INT64');
  assert.deepEqual(label!.shape, [rows]);
  assert.deepEqual(asI64(label!), ref.label!.data);
}

/** Check a delay-model answer (output = 2 x input) against the fixture's reference. */
function assertDoubled(fx: ModelFixture, x: Float32Array, rows: number, a: Answer): void {
  assert.equal(a.err, null, `unexpected error ${JSON.stringify(a.err)}`);
  const ref = fx.forward({ input: { datatype: 'FP32', shape: [rows, 4], data: x } });
  assert.equal(a.outputs!.length, 1);
  assert.deepEqual(a.outputs![0]!.shape, [rows, 4]);
  assertClose(asF32(a.outputs![0]!), ref.output!.data as Float32Array, 'output');
}

function config(id: string, over: Partial<ExecutorConfig> = {}): ExecutorConfig {
  return { id, maxBatchSize: 64, batchWaitMs: 0, latencyObjectiveMs: 1000, cacheBytes: 0, maxQueueRows: 10_000, ...over };
}

/** Rows dispatched so far, from the batch-size histogram (small integers are recorded exactly). */
function rowsDispatched(ex: Executor): number {
  const h = ex.latency.batchRows;
  return h.totalCount === 0 ? 0 : Math.round(h.mean * h.totalCount);
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Fixtures: one pool per executor (an executor owns its pool's slots).

let repo: string;
let clf: ModelFixture;
let fixed: ModelFixture;
let slow: ModelFixture;
const executors: Executor[] = [];

const onnx = (file: string, over: Partial<PoolOptions> = {}): PoolOptions => ({
  kind: 'onnx', modelPath: file, replicas: 1, threads: 1, requestRingBytes: 1 << 16, responseRingBytes: 1 << 16, ...over,
});
const js = (file: string, over: Partial<PoolOptions> = {}): PoolOptions => ({ ...onnx(file, over), kind: 'js' });

async function startExecutor(opts: PoolOptions, cfg: ExecutorConfig): Promise<Executor> {
  const runner = await WorkerRunner.start(opts);
  const ex = new Executor(cfg, runner, systemClock);
  executors.push(ex);
  return ex;
}

let exClf: Executor;
let exTiny: Executor;
let exFixed: Executor;
let exSlow: Executor;
let exBounded: Executor;
let exClose: Executor;
let exCache: Executor;
let exWait: Executor;

before(async () => {
  repo = mkdtempSync(join(tmpdir(), 'skiff-executor-'));
  clf = writeClassifier(repo, 'clf', { seed: 11, inputDim: DIM, classes: CLASSES, hidden: 8 });
  fixed = writeFixedShape(repo, 'fixed');
  slow = writeDelayModel(repo, 'slow', { delayMs: DELAY_MS });
  [exClf, exTiny, exFixed, exSlow, exBounded, exClose, exCache, exWait] = await Promise.all([
    startExecutor(onnx(clf.file, { replicas: 2 }), config('clf:1', { maxBatchSize: 8 })),
    // Rings too small for most batches: requests and responses travel inline instead.
    startExecutor(onnx(clf.file, { requestRingBytes: 256, responseRingBytes: 256 }), config('tiny:1', { maxBatchSize: 8 })),
    startExecutor(onnx(fixed.file), config('fixed:1')),
    startExecutor(js(slow.file), config('slow:1')),
    // Depth 1 (one batch per replica, none waiting behind it): queue semantics are exact.
    startExecutor(js(slow.file, { depth: 1 }), config('bounded:1', { maxQueueRows: 3 })),
    startExecutor(js(slow.file, { depth: 1 }), config('close:1')),
    startExecutor(onnx(clf.file, { depth: 1 }), config('cache:1', { cacheBytes: 1 << 20 })),
    startExecutor(onnx(clf.file), config('wait:1', { batchWaitMs: 100, maxBatchSize: 8 })),
  ]);
});

after(async () => {
  await Promise.all(executors.map((ex) => ex.close()));
  rmSync(repo, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('executor: correctness against the reference', () => {
  it('describes the model and answers a single query', TEST, async () => {
    assert.equal(exClf.spec.batchable, true);
    assert.deepEqual(exClf.spec.inputs, clf.inputs);
    assert.deepEqual(exClf.spec.outputs, clf.outputs);
    const prng = new Prng(1);
    for (const rows of [1, 3]) {
      const x = randomRows(prng, rows, DIM);
      const q = ask(exClf, [f32Tensor('input', [rows, DIM], x)], rows);
      const a = await q.answer;
      assert.equal(a.sync, false);
      assertClassifier(clf, x, rows, a);
      assert.equal(q.calls(), 1);
    }
  });

  it('answers many concurrent queries, each with its own rows', TEST, async () => {
    const prng = new Prng(2);
    const answered0 = exClf.counters.answered;
    const qs = Array.from({ length: 60 }, () => {
      const rows = 1 + prng.int(4);
      const x = randomRows(prng, rows, DIM);
      return { rows, x, q: ask(exClf, [f32Tensor('input', [rows, DIM], x)], rows) };
    });
    for (const { rows, x, q } of qs) assertClassifier(clf, x, rows, await q.answer);
    assert.ok(qs.every(({ q }) => q.calls() === 1));
    assert.equal(exClf.counters.answered - answered0, 60);
    assert.ok(exClf.latency.batchRows.maxValue <= 8, 'no batch above max_batch_size');
    assert.equal(exClf.queueDepth, 0);
  });

  it('splits a query larger than max_batch_size and concatenates the parts', TEST, async () => {
    const prng = new Prng(3);
    const rows = 21; // 8 + 8 + 5
    const x = randomRows(prng, rows, DIM);
    const batches0 = exClf.counters.batches;
    const a = await ask(exClf, [f32Tensor('input', [rows, DIM], x)], rows).answer;
    assertClassifier(clf, x, rows, a);
    assert.ok(exClf.counters.batches - batches0 >= 3, 'at least three batches');
    assert.ok(exClf.latency.batchRows.maxValue <= 8);
  });

  it('batches too large for the rings travel inline and still answer correctly', TEST, async () => {
    const prng = new Prng(4);
    const qs = [1, 3, 8, 2, 5].map((rows) => {
      const x = randomRows(prng, rows, DIM);
      return { rows, x, q: ask(exTiny, [f32Tensor('input', [rows, DIM], x)], rows) };
    });
    for (const { rows, x, q } of qs) assertClassifier(clf, x, rows, await q.answer);
  });

  it('a fixed-shape (non-batchable) model runs each query alone', TEST, async () => {
    assert.equal(exFixed.spec.batchable, false);
    const prng = new Prng(5);
    const batches0 = exFixed.counters.batches;
    const qs = Array.from({ length: 5 }, () => {
      const x = randomRows(prng, 2, 3);
      return { x, q: ask(exFixed, [f32Tensor('x', [2, 3], x)], 1) };
    });
    for (const { x, q } of qs) {
      const a = await q.answer;
      assert.equal(a.err, null);
      const ref = fixed.forward({ x: { datatype: 'FP32', shape: [2, 3], data: x } });
      assert.deepEqual(a.outputs![0]!.shape, [2, 3]);
      assertClose(asF32(a.outputs![0]!), ref.y!.data as Float32Array, 'y');
    }
    assert.equal(exFixed.counters.batches - batches0, 5);
    assert.equal(exFixed.batchCap, 1);
  });
});

describe('executor: batching, deadlines, cancellation (JS delay model)', () => {
  it('forms batches of several rows under concurrent load, with per-query results', TEST, async () => {
    const prng = new Prng(6);
    const batches0 = exSlow.counters.batches;
    const qs = Array.from({ length: 50 }, () => {
      const x = randomRows(prng, 1, 4);
      return { x, q: ask(exSlow, [f32Tensor('input', [1, 4], x)], 1) };
    });
    for (const { x, q } of qs) assertDoubled(slow, x, 1, await q.answer);
    const batches = exSlow.counters.batches - batches0;
    assert.ok(batches < 50, `${batches} batches for 50 queries`);
    assert.ok(exSlow.latency.batchRows.maxValue > 1, 'some batch held more than one row');
    assert.ok(exSlow.batchCap > 1, 'AIMD raised the cap under a generous objective');
  });

  it('a query that cannot meet its deadline is answered before the running batch ends, and never runs', TEST, async () => {
    const prng = new Prng(7);
    const x0 = randomRows(prng, 1, 4);
    const expired0 = exSlow.counters.expired;
    const refused0 = exSlow.counters.refused;
    const q0 = ask(exSlow, [f32Tensor('input', [1, 4], x0)], 1);
    const q1 = ask(exSlow, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1, performance.now() + 1);
    const [a0, a1] = await Promise.all([q0.answer, q1.answer]);
    assert.equal(a1.outputs, undefined);
    assert.ok(a1.at < a0.at, 'answered while the slow batch was still running');
    assertDoubled(slow, x0, 1, a0);
    assert.equal(q1.calls(), 1);
    // Before the executor has a latency history the query waits and expires; after, admission
    // control refuses it on arrival (OVERLOADED: the running batch is in the way).
    if (a1.sync) {
      assert.equal(a1.err?.code, 'OVERLOADED');
      assert.ok((a1.err?.retryAfterMs ?? 0) > 0);
      assert.equal(exSlow.counters.refused - refused0, 1);
    } else {
      assert.equal(a1.err?.code, 'DEADLINE_EXCEEDED');
      assert.equal(exSlow.counters.expired - expired0, 1);
    }
  });

  it('admission control: once warmed up, refuses on arrival what the queue ahead makes late', TEST, async () => {
    const prng = new Prng(17);
    for (let i = 0; i < 8; i++) await ask(exSlow, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1).answer;
    const refused0 = exSlow.counters.refused;
    // One batch running, more queued behind it; a query with half a batch of budget cannot make it.
    const busy = [0, 1, 2].map(() => ask(exSlow, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1));
    const late = ask(exSlow, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1, performance.now() + DELAY_MS / 2);
    const a = await late.answer;
    assert.equal(a.sync, true, 'refused on arrival, not after waiting');
    assert.equal(a.err?.code, 'OVERLOADED');
    assert.ok((a.err?.retryAfterMs ?? 0) >= 1);
    assert.equal(exSlow.counters.refused - refused0, 1);
    // A generous deadline is still admitted.
    const ok = await ask(exSlow, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1, performance.now() + 20 * DELAY_MS).answer;
    assert.equal(ok.err, null);
    for (const b of busy) assert.equal((await b.answer).err, null);
  });

  it('a deadline already past is refused synchronously', TEST, async () => {
    const a = await ask(exSlow, [f32Tensor('input', [1, 4], new Float32Array(4))], 1, performance.now() - 1).answer;
    assert.equal(a.err?.code, 'DEADLINE_EXCEEDED');
    assert.equal(a.sync, true);
  });

  it('cancel() of a queued query answers CANCELLED at once and it never runs', TEST, async () => {
    const prng = new Prng(8);
    const x0 = randomRows(prng, 1, 4);
    const batches0 = exSlow.counters.batches;
    const rows0 = rowsDispatched(exSlow);
    const q0 = ask(exSlow, [f32Tensor('input', [1, 4], x0)], 1);
    const q1 = ask(exSlow, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1);
    assert.equal(exSlow.queueDepth, 1, 'q1 waits behind the running batch');
    q1.handle.cancel();
    assert.equal(q1.calls(), 1, 'answered synchronously by cancel()');
    assert.equal((await q1.answer).err?.code, 'CANCELLED');
    assert.equal(exSlow.queueDepth, 0);
    assertDoubled(slow, x0, 1, await q0.answer);
    await exSlow.drain();
    assert.equal(exSlow.counters.batches - batches0, 1);
    assert.equal(rowsDispatched(exSlow) - rows0, 1, 'only q0 was dispatched');
    q1.handle.cancel();
    q0.handle.cancel();
    await tick();
    assert.equal(q1.calls(), 1, 'a second cancel does not answer again');
    assert.equal(q0.calls(), 1, 'cancelling an answered query does not answer again');
  });

  it('refuses with OVERLOADED and a retry hint once the queue bound is reached', TEST, async () => {
    const prng = new Prng(9);
    const q = (rows = 1): Asked => ask(exBounded, [f32Tensor('input', [rows, 4], randomRows(prng, rows, 4))], rows);
    const running = q();
    const queued = [q(), q(), q()];
    assert.equal(exBounded.queueDepth, 3);
    const refused = q();
    const a = await refused.answer;
    assert.equal(a.sync, true);
    assert.equal(a.err?.code, 'OVERLOADED');
    assert.ok(typeof a.err?.retryAfterMs === 'number' && a.err.retryAfterMs > 0, `retryAfterMs ${a.err?.retryAfterMs}`);
    assert.equal(exBounded.counters.refused, 1);
    for (const x of [running, ...queued]) assert.equal((await x.answer).err, null);
    // Room again once the queue drained.
    assert.equal((await q().answer).err, null);
  });
});

describe('executor: pipelining (a replica holds a running batch and full ones behind it)', () => {
  let exPipe: Executor;
  let exCrash: Executor;
  before(async () => {
    // A JS model that adds 1, and kills its worker on the poison input x[0] = 666.
    const crash = writeFaultyModel(repo, 'crash', 'process.exit(3);');
    // Cap 1: every query is a full batch, so a busy replica takes one more behind the running one.
    [exPipe, exCrash] = await Promise.all([
      startExecutor(js(slow.file), config('pipe:1', { maxBatchSize: 1 })),
      startExecutor(js(crash), config('crash:1', { maxBatchSize: 1 })),
    ]);
  });

  it('a busy replica takes a full batch into its ring; the next one waits in the queue', TEST, async () => {
    const prng = new Prng(30);
    const qs = [0, 1, 2].map(() => {
      const x = randomRows(prng, 1, 4);
      return { x, q: ask(exPipe, [f32Tensor('input', [1, 4], x)], 1) };
    });
    assert.equal(exPipe.inflight, 2, 'running + one behind it');
    assert.equal(exPipe.queueDepth, 1, 'depth 2 reached: the third waits');
    for (const { x, q } of qs) assertDoubled(slow, x, 1, await q.answer);
    assert.equal(exPipe.inflight, 0);
  });

  it('a worker that dies fails the batch it ran; the batch behind it runs on the replacement', TEST, async () => {
    const poison = ask(exCrash, [f32Tensor('input', [1, 4], new Float32Array([666, 0, 0, 0]))], 1);
    const behind = ask(exCrash, [f32Tensor('input', [1, 4], new Float32Array([1, 2, 3, 4]))], 1);
    assert.equal(exCrash.inflight, 2);
    const p = await poison.answer;
    assert.equal(p.err?.code, 'MODEL_ERROR');
    assert.match(p.err!.message, /worker failed/);
    const b = await behind.answer;
    assert.equal(b.err, null, JSON.stringify(b.err));
    assert.deepEqual(Array.from(asF32(b.outputs![0]!)), [2, 3, 4, 5]);
    assert.equal(exCrash.counters.workerFailures, 1);
    assert.ok(exCrash.workerRestarts >= 1);
  });
});

describe('executor: parking an idle pool', () => {
  it('stops the workers after park_idle_ms without a query and starts them again for the next one', TEST, async () => {
    const ex = await startExecutor(onnx(clf.file), config('park:1', { parkIdleMs: 150 }));
    const prng = new Prng(40);
    const one = async (): Promise<void> => {
      const x = randomRows(prng, 2, DIM);
      assertClassifier(clf, x, 2, await ask(ex, [f32Tensor('input', [2, DIM], x)], 2).answer);
    };
    await one();
    assert.equal(ex.parked, false);
    for (let i = 0; i < 40 && !ex.parked; i++) await sleep(50);
    assert.equal(ex.parked, true, 'parked after idling');
    for (let i = 0; i < 40 && ex.threads > 0; i++) await sleep(50);
    assert.equal(ex.threads, 0, 'no worker thread while parked');
    assert.equal(ex.replicas, 1);
    // A cold start: the query waits in the fresh ring while the worker loads the model.
    await one();
    assert.equal(ex.parked, false);
    assert.equal(ex.threads, 1);
    await Promise.all([one(), one(), one()]);
    assert.equal(ex.parks, 1);
    assert.equal(ex.counters.errors, 0);
  });
});

describe('executor: batch wait timeout', () => {
  // waitMs 100: a partial batch waits for company; a full one leaves at once.
  it('a full batch leaves at once; a partial one waits for the timeout', TEST, async () => {
    const prng = new Prng(10);
    const one = (): { x: Float32Array; q: Asked } => {
      const x = randomRows(prng, 1, DIM);
      return { x, q: ask(exWait, [f32Tensor('input', [1, DIM], x)], 1) };
    };
    // Cap 1: a single row is a full batch.
    assert.equal(exWait.batchCap, 1);
    let t0 = performance.now();
    let w = one();
    assertClassifier(clf, w.x, 1, await w.q.answer);
    assert.ok(performance.now() - t0 < 90, 'a full batch does not wait');
    assert.equal(exWait.batchCap, 3, 'full and fast: +2');
    // Three rows fill the cap of 3.
    t0 = performance.now();
    const three = [one(), one(), one()];
    for (const { x, q } of three) assertClassifier(clf, x, 1, await q.answer);
    assert.ok(performance.now() - t0 < 90, 'a full batch does not wait');
    assert.equal(exWait.batchCap, 5);
    // One row under a cap of 5 waits the 100 ms timeout.
    t0 = performance.now();
    w = one();
    const a = await w.q.answer;
    assertClassifier(clf, w.x, 1, a);
    assert.ok(a.at - t0 >= 99, `answered after ${(a.at - t0).toFixed(1)} ms`);
    assert.equal(exWait.batchCap, 5, 'a partial batch does not raise the cap');
  });

  it('drain() resolves when the only queued query is cancelled', TEST, async () => {
    const q = ask(exWait, [f32Tensor('input', [1, DIM], new Float32Array(DIM))], 1);
    assert.equal(exWait.queueDepth, 1, 'waiting for the batch timeout');
    const drained = exWait.drain().then(() => 'drained');
    q.handle.cancel();
    assert.equal((await q.answer).err?.code, 'CANCELLED');
    assert.equal(await Promise.race([drained, sleep(300).then(() => 'hung')]), 'drained');
  });
});

describe('executor: prediction cache', () => {
  it('a repeated query is answered synchronously from the cache without a batch', TEST, async () => {
    const prng = new Prng(12);
    const x = randomRows(prng, 2, DIM);
    const first = await ask(exCache, [f32Tensor('input', [2, DIM], x)], 2).answer;
    assertClassifier(clf, x, 2, first);
    const batches = exCache.counters.batches;
    const hits = exCache.counters.cacheHits;
    const again = ask(exCache, [f32Tensor('input', [2, DIM], x.slice())], 2);
    const a = await again.answer;
    assert.equal(a.sync, true);
    assertClassifier(clf, x, 2, a);
    assert.equal(exCache.counters.batches, batches, 'no batch dispatched');
    assert.equal(exCache.counters.cacheHits - hits, 1);
    // One different value is a different query.
    const y = x.slice();
    y[DIM + 3] = y[DIM + 3]! + 1;
    const other = ask(exCache, [f32Tensor('input', [2, DIM], y)], 2);
    assert.equal(other.calls(), 0, 'not a cache hit');
    assertClassifier(clf, y, 2, await other.answer);
    assert.equal(exCache.counters.batches - batches, 1);
  });

  it('identical concurrent queries run once and all get the answer', TEST, async () => {
    const prng = new Prng(13);
    const x = randomRows(prng, 1, DIM);
    const batches = exCache.counters.batches;
    const coalesced = exCache.cache!.stats.coalesced;
    const qs = Array.from({ length: 10 }, () => ask(exCache, [f32Tensor('input', [1, DIM], x.slice())], 1));
    for (const q of qs) assertClassifier(clf, x, 1, await q.answer);
    assert.equal(exCache.counters.batches - batches, 1);
    assert.equal(exCache.cache!.stats.coalesced - coalesced, 9);
    assert.ok(qs.every((q) => q.calls() === 1));
  });

  it('a cancelled follower is answered CANCELLED and the others still get the result', TEST, async () => {
    const prng = new Prng(14);
    const x = randomRows(prng, 1, DIM);
    const lead = ask(exCache, [f32Tensor('input', [1, DIM], x.slice())], 1);
    const follower = ask(exCache, [f32Tensor('input', [1, DIM], x.slice())], 1);
    const other = ask(exCache, [f32Tensor('input', [1, DIM], x.slice())], 1);
    follower.handle.cancel();
    assert.equal((await follower.answer).err?.code, 'CANCELLED');
    assertClassifier(clf, x, 1, await lead.answer);
    assertClassifier(clf, x, 1, await other.answer);
    assert.equal(follower.calls(), 1);
  });

  it('cancelling the leader keeps its followers served', TEST, async () => {
    const prng = new Prng(17);
    const x = randomRows(prng, 1, DIM);
    const lead = ask(exCache, [f32Tensor('input', [1, DIM], x.slice())], 1);
    const followers = [0, 1].map(() => ask(exCache, [f32Tensor('input', [1, DIM], x.slice())], 1));
    lead.handle.cancel();
    assert.equal((await lead.answer).err?.code, 'CANCELLED');
    for (const f of followers) assertClassifier(clf, x, 1, await f.answer);
    assert.equal(lead.calls(), 1);
  });

  it('cancelling a queued query with no followers counts one cancellation', TEST, async () => {
    const prng = new Prng(18);
    const busy = ask(exCache, [f32Tensor('input', [1, DIM], randomRows(prng, 1, DIM))], 1);
    const queued = ask(exCache, [f32Tensor('input', [1, DIM], randomRows(prng, 1, DIM))], 1);
    assert.equal(exCache.queueDepth, 1, 'the single replica is busy');
    const cancelled = exCache.counters.cancelled;
    queued.handle.cancel();
    assert.equal((await queued.answer).err?.code, 'CANCELLED');
    assert.equal((await busy.answer).err, null);
    assert.equal(queued.calls(), 1);
    assert.equal(exCache.queueDepth, 0);
    assert.equal(exCache.counters.cancelled - cancelled, 1);
  });

  it('cancel() after the answer does not answer a second time', TEST, async () => {
    const prng = new Prng(15);
    const x = randomRows(prng, 1, DIM);
    const q = ask(exCache, [f32Tensor('input', [1, DIM], x)], 1);
    assert.equal((await q.answer).err, null);
    q.handle.cancel();
    await tick();
    assert.equal(q.calls(), 1);
  });
});

describe('executor: close', () => {
  it('answers queued queries MODEL_UNAVAILABLE, finishes the running batch, refuses new ones', TEST, async () => {
    const prng = new Prng(16);
    const x0 = randomRows(prng, 1, 4);
    const running = ask(exClose, [f32Tensor('input', [1, 4], x0)], 1);
    const queued = Array.from({ length: 4 }, () => ask(exClose, [f32Tensor('input', [1, 4], randomRows(prng, 1, 4))], 1));
    assert.equal(exClose.queueDepth, 4);
    const closing = exClose.close();
    for (const q of queued) {
      assert.equal(q.calls(), 1, 'answered as close() starts');
      assert.equal((await q.answer).err?.code, 'MODEL_UNAVAILABLE');
    }
    assertDoubled(slow, x0, 1, await running.answer);
    await closing;
    const late = ask(exClose, [f32Tensor('input', [1, 4], x0)], 1);
    const a = await late.answer;
    assert.equal(a.sync, true);
    assert.equal(a.err?.code, 'MODEL_UNAVAILABLE');
  });
});

describe('executor: queries of different shapes (one queue per signature)', () => {
  let exShapes: Executor;
  let anyWidth: ModelFixture;
  before(async () => {
    anyWidth = writeDelayModel(repo, 'shapes', { delayMs: DELAY_MS, dim: 'any' });
    // Depth 1 and a generous objective: the cap only grows, and every batch waits for an idle replica.
    exShapes = await startExecutor(js(anyWidth.file, { depth: 1 }), config('shapes:1', { maxBatchSize: 8 }));
  });

  const shaped = (prng: Prng, rows: number, width: number) => {
    const x = randomRows(prng, rows, width);
    return { x, rows, width, q: ask(exShapes, [f32Tensor('input', [rows, width], x)], rows) };
  };

  it('each shape forms its own batch: a query of another shape neither joins it nor cuts it short', TEST, async () => {
    const prng = new Prng(40);
    // Full 8-row batches until the cap reaches 8.
    while (exShapes.batchCap < 8) {
      const w = shaped(prng, 8, 4);
      assert.equal((await w.q.answer).err, null);
    }
    const before = exShapes.counters.batches;
    const blocker = shaped(prng, 1, 4);
    // Queued behind it, in this (deadline) order: a 1-row [1,4], an 8-row [8,8] that would not fit
    // beside it under the cap, then six more [1,4]. (One queue for all shapes would send the first
    // [1,4] alone, cut short by the [8,8] query, and the other six in a third batch.)
    const queued = [shaped(prng, 1, 4), shaped(prng, 8, 8), ...Array.from({ length: 6 }, () => shaped(prng, 1, 4))];
    assert.equal(exShapes.shapes, 2);
    for (const s of [blocker, ...queued]) {
      const a = await s.q.answer;
      assert.equal(a.err, null, JSON.stringify(a.err));
      assert.deepEqual(a.outputs![0]!.shape, [s.rows, s.width]);
      assertClose(asF32(a.outputs![0]!), Array.from(s.x, (v) => v * 2), 'output');
    }
    // The blocker, then all seven [1,4] rows in one batch, then the [8,8] query.
    assert.equal(exShapes.counters.batches - before, 3);
  });
  it('each shape learns its own cap: wide rows stay in small batches while narrow ones fill max_batch_size', { timeout: 60_000 }, async () => {
    // 1 ms + 20 µs per element, objective 20 ms: a [N,4] row costs 80 µs (64 rows: 6 ms), a [N,64]
    // row 1.28 ms (at most 14 rows fit 20 ms); a [N,64] batch at the narrow shape's 64 rows would run 83 ms.
    const model = writeDelayModel(repo, 'widths', { delayMs: 1, perElementUs: 20, dim: 'any' });
    const ex = await startExecutor(js(model.file, { depth: 1 }), config('widths:1', { maxBatchSize: 64, latencyObjectiveMs: 20 }));
    const prng = new Prng(41);
    const narrow = randomRows(prng, 1, 4);
    const wide = randomRows(prng, 1, 64);
    const until = ex.counters.batches + 160;
    await new Promise<void>((resolve, reject) => {
      let open = 0;
      const one = (x: Float32Array): void => {
        open++;
        ex.infer([f32Tensor('input', [1, x.length], x)], 1, performance.now() + 60_000, (err, out) => {
          open--;
          if (err) return reject(new Error(JSON.stringify(err)));
          if (out![0]!.shape[1] !== x.length) return reject(new Error(`answer of width ${out![0]!.shape[1]} for a row of ${x.length}`));
          if (ex.counters.batches < until) one(x);
          else if (open === 0) resolve();
        });
      };
      for (let i = 0; i < 100; i++) {
        one(narrow);
        one(wide);
      }
    });
    const caps = Object.fromEntries(ex.shapeCaps().map((c) => [c.sig, c.cap]));
    assert.equal(caps['4;'], 64, JSON.stringify(caps));
    assert.ok(caps['64;']! >= 8 && caps['64;']! <= 15, JSON.stringify(caps));
    // The model's own run time per batch stayed near the objective: the wide shape's cap held it there.
    assert.ok(ex.latency.computeUs.getValueAtPercentile(50) <= 20_000 * 1.1, `run p50 ${ex.latency.computeUs.getValueAtPercentile(50)} µs`);

    // A successor for the same version (a resize, a new config) starts each shape at its learned cap.
    const next = await startExecutor(js(model.file, { depth: 1 }), config('widths:1', { maxBatchSize: 64, latencyObjectiveMs: 20 }));
    next.adopt(ex);
    const answered = (x: Float32Array) => new Promise<void>((resolve, reject) => {
      next.infer([f32Tensor('input', [1, x.length], x)], 1, performance.now() + 60_000, (err) => (err ? reject(new Error(JSON.stringify(err))) : resolve()));
    });
    const before = Object.fromEntries(next.shapeCaps().map((c) => [c.sig, c.cap]));
    assert.deepEqual(before, {}, 'no queue yet');
    const first = Promise.all([answered(wide), answered(narrow)]);
    const adopted = Object.fromEntries(next.shapeCaps().map((c) => [c.sig, c.cap]));
    assert.deepEqual(adopted, { '4;': caps['4;'], '64;': caps['64;'] });
    await first;
  });
});

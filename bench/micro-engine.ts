/**
 * Microbenchmark of the executor's own cost on the main thread, per query: enqueue, batch
 * forming, writing the batch into the request ring, reading the outputs from the response ring,
 * splitting and answering. The runner is replaced by an in-thread stand-in that answers
 * each batch on the next event-loop turn with a 10-float output per row, so no thread wake-up
 * or model time is included. Run: node dist/bench/micro-engine.js
 */
import { Executor } from '../src/engine/executor.js';
import type { Replica, Runner, RunnerBatch, RunnerEvents } from '../src/engine/runner.js';
import { systemClock } from '../src/clock.js';
import type { Tensor } from '../src/tensor/tensor.js';

const OUT = 10;

/** A runner whose one "replica" runs on this thread: answers each batch on the next turn with zeros as outputs. */
function instantRunner(): Runner {
  const zeros = new Uint8Array(4 * OUT * 4096);
  const pending: RunnerBatch[] = [];
  let events!: RunnerEvents;
  let scheduled = false;
  const serve = (): void => {
    scheduled = false;
    for (let b = pending.shift(); b; b = pending.shift()) {
      events.answered(replica, { seq: b.seq, runUs: 0, outputs: [{ datatype: 'FP32', dims: [b.rows, OUT], data: zeros.subarray(0, b.rows * OUT * 4) }] });
    }
    events.settled();
  };
  const replica: Replica = {
    id: '0',
    maxBatchBytes: 1 << 22,
    send(b) {
      // Stack the inputs as a ring write would (one copy of the batch's bytes).
      const bytes = new Uint8Array(b.parts.reduce((n, p) => n + p.inputs[0]!.data.byteLength, 0));
      let off = 0;
      for (const p of b.parts) {
        bytes.set(p.inputs[0]!.data, off);
        off += p.inputs[0]!.data.byteLength;
      }
      pending.push(b);
      if (!scheduled) {
        scheduled = true;
        setImmediate(serve);
      }
      return true;
    },
    terminate: () => undefined,
  };
  return {
    kind: 'worker', replicas: [replica], wantedReplicas: 1, depth: 2, restarts: 0, threads: 1, isParked: false, parks: 0,
    description: {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 784] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, OUT] }],
    },
    bind: (e) => (events = e),
    park: () => undefined,
    unpark: () => undefined,
    close: async () => undefined,
  };
}

/** `shapes` > 1: the queries cycle through that many row widths (a model with variable-length inputs). */
async function measure(name: string, inFlight: number, batchWaitMs: number, queries: number, shapes = 1): Promise<void> {
  const ex = new Executor({ id: 'micro:1', maxBatchSize: 256, batchWaitMs, latencyObjectiveMs: 1e9, cacheBytes: 0, maxQueueRows: 1 << 20 }, instantRunner(), systemClock);
  const inputs: Tensor[][] = Array.from({ length: shapes }, (_, k) => [{ name: 'input', datatype: 'FP32', shape: [1, 784 - k], data: new Uint8Array((784 - k) * 4) }]);
  let issued = 0;
  let answered = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const issue = (): void => {
      const input = inputs[issued % shapes]!;
      issued++;
      ex.infer(input, 1, systemClock.now() + 60_000, (err) => {
        if (err) throw new Error(err.message);
        if (++answered === queries) resolve();
        else if (issued < queries) issue();
      });
    };
    for (let i = 0; i < inFlight; i++) issue();
  });
  const us = ((performance.now() - t0) * 1000) / queries;
  console.log(`${name.padEnd(44)} ${us.toFixed(2).padStart(7)} us/query  (mean batch ${ex.latency.snapshot().batchRows.mean.toFixed(1)})`);
  await ex.close();
}

await measure('1024 in flight, batch wait 0', 1024, 0, 300_000);
await measure('1024 in flight, batch wait 0.5 ms', 1024, 0.5, 300_000);
await measure('64 in flight, batch wait 0', 64, 0, 100_000);
await measure('1 in flight, batch wait 0', 1, 0, 20_000);
await measure('1024 in flight, 256 row widths, batch wait 0', 1024, 0, 100_000, 256);

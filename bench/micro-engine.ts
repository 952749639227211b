/**
 * Microbenchmark of the executor's own cost on the main thread, per query: enqueue, batch
 * forming, writing the batch into the request ring, reading the outputs from the response ring,
 * splitting and answering. The worker pool is replaced by an in-thread stand-in that answers
 * each batch on the next event-loop turn with a 10-float output per row, so no thread wake-up
 * or model time is included. Run: node dist/bench/micro-engine.js
 */
import { Executor } from '../src/engine/executor.js';
import type { ModelPool, PoolSlot } from '../src/engine/pool.js';
import { Ring, createRingBuffer } from '../src/engine/ring/ring.js';
import { readTensorList, TensorListWriter, tensorListBytes } from '../src/engine/ring/layout.js';
import { systemClock } from '../src/clock.js';
import type { Tensor } from '../src/tensor/tensor.js';

const OUT = 10;
const FP32 = 11;

/** A pool whose "worker" runs on this thread: reads each request record on the next turn, writes zeros as outputs. */
function instantPool(): ModelPool {
  const req = new Ring(createRingBuffer(1 << 22));
  const res = new Ring(createRingBuffer(1 << 22));
  const writer = new TensorListWriter();
  const zeros = new Uint8Array(4 * OUT * 4096);
  let scheduled = false;
  const pool = {
    onReadable: (_slot: number) => undefined as void,
    onSlotLost: () => undefined,
    description: {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 784] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, OUT] }],
    },
    close: async () => undefined,
    threads: 1,
    slots: [] as PoolSlot[],
  };
  const serve = (): void => {
    scheduled = false;
    for (let rec = req.peek(); rec; rec = req.peek()) {
      const list = readTensorList(rec);
      const rows = list.tensors[0]!.dims[0]!;
      req.release();
      const bytes = rows * OUT * 4;
      const target = res.reserve(tensorListBytes([{ ndims: 2, byteLength: bytes }]))!;
      writer.begin(target, list.seq, 1).tensor(FP32, [rows, OUT], bytes).set(zeros.subarray(0, bytes));
      res.commit();
    }
    pool.onReadable(0);
  };
  const slot = {
    index: 0, req, res, generation: 0, side: { take: () => undefined },
    watch(): boolean {
      if (!scheduled) {
        scheduled = true;
        setImmediate(serve);
      }
      return false;
    },
    sendExternal: () => false,
    terminate: () => undefined,
  };
  pool.slots.push(slot as unknown as PoolSlot);
  return pool as unknown as ModelPool;
}

async function measure(name: string, inFlight: number, batchWaitMs: number, queries: number): Promise<void> {
  const ex = new Executor({ id: 'micro:1', maxBatchSize: 256, batchWaitMs, latencyObjectiveMs: 1e9, cacheBytes: 0, maxQueueRows: 1 << 20 }, instantPool(), systemClock);
  const input: Tensor[] = [{ name: 'input', datatype: 'FP32', shape: [1, 784], data: new Uint8Array(784 * 4) }];
  let issued = 0;
  let answered = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const issue = (): void => {
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

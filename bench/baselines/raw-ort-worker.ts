/**
 * Worker thread of the raw ONNX Runtime baseline (raw-ort.ts): one session, configured like a
 * Skiff model worker, run back to back at each batch size; posts the sweep and exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { createHistogram, percentiles, recordUs } from '../lib/histogram.js';
import type { RawOrtJob, RawOrtPoint } from './raw-ort.js';

const job = workerData as RawOrtJob;

async function sweep(): Promise<RawOrtPoint[]> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: job.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (job.threads > 1) (options as Record<string, unknown>).extra = { session: { intra_op: { allow_spinning: '0' } } };
  const session = await ort.InferenceSession.create(job.modelPath, options);
  const { rows } = job;
  const out: RawOrtPoint[] = [];
  for (const b of job.batches) {
    const x = new Float32Array(b * rows.elems);
    for (let r = 0; r < b; r++) x.set(rows.data.subarray((r % rows.count) * rows.elems, (r % rows.count + 1) * rows.elems), r * rows.elems);
    const dims = [b, ...job.rowShape];
    const run = () => session.run({ [job.inputName]: new ort.Tensor('float32', x, dims) });
    for (let i = 0; i < 5; i++) await run();
    const h = createHistogram();
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < job.msPerBatch) {
      await run();
      const t1 = performance.now();
      recordUs(h, (t1 - t) * 1000);
      t = t1;
      n++;
    }
    out.push({ batch: b, rowsPerSec: (n * b) / ((t - t0) / 1000), runUs: percentiles(h) });
  }
  await session.release();
  return out;
}

sweep().then(
  (s) => parentPort!.postMessage({ sweep: s }),
  (err: unknown) => parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) }),
);

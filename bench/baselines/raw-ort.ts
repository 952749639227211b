/**
 * Baseline (a), the limit: the model run in-process by ONNX Runtime directly, in a worker
 * thread with the same session options and thread count as a Skiff worker, over a sweep of
 * batch sizes. No server, no transport, no copies beyond building the input once per size.
 */
import { Worker } from 'node:worker_threads';
import type { Percentiles } from '../lib/histogram.js';
import type { Rows } from '../lib/payload.js';

export interface RawOrtOptions {
  modelPath: string;
  inputName: string;
  rowShape: number[];
  threads: number;
  batches: number[];
  /** Measured time per batch size (after a short warm-up). */
  msPerBatch: number;
  rows: Rows;
}

export interface RawOrtPoint {
  batch: number;
  rowsPerSec: number;
  /** Latency of one run at this batch size (µs). */
  runUs: Percentiles;
}

export interface RawOrtResult {
  threads: number;
  sweep: RawOrtPoint[];
  /** The batch size with the highest rows/s. */
  best: RawOrtPoint;
}

export interface RawOrtJob extends RawOrtOptions {
  kind: 'raw-ort';
}

/** Run the sweep in a fresh worker thread; resolves when it is done (the thread exits). */
export function measureRawOrt(o: RawOrtOptions): Promise<RawOrtResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./raw-ort-worker.js', import.meta.url), { workerData: { kind: 'raw-ort', ...o } satisfies RawOrtJob });
    w.once('message', (m: { sweep?: RawOrtPoint[]; error?: string }) => {
      void w.terminate();
      if (m.error || !m.sweep) return reject(new Error(`raw ORT baseline: ${m.error}`));
      const best = m.sweep.reduce((a, b) => (b.rowsPerSec > a.rowsPerSec ? b : a));
      resolve({ threads: o.threads, sweep: m.sweep, best });
    });
    w.once('error', reject);
  });
}

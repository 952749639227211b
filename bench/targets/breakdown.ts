/**
 * Where a model's time goes during one load run, from the server's own counters: batches per
 * second, rows per batch, the batch latency the executor observed (dispatch to answers), the
 * raw ORT time for a batch of that size (from the in-process sweep) and what is left: the
 * per-batch overhead (thread hand-offs, copies) and the time the replica sat idle between
 * batches (one batch in flight per replica).
 */
import type { ChildHandle } from '../lib/child.js';
import type { LoadResult } from '../lib/spec.js';
import type { RawOrtResult } from '../baselines/raw-ort.js';
import { fmtInt, fmtUs } from '../lib/format.js';

interface Stats {
  latency: { batchRows: { mean: number }; batchRunUs: { mean: number; p50: number; p99: number } };
}

export interface Breakdown {
  batchesPerSec: number;
  rowsPerBatch: number;
  batchUs: number;
  rawUs: number;
  overheadUs: number;
  idleUs: number;
}

/** Raw ORT time (µs, p50) for `rows`, interpolated between the swept batch sizes. */
export function rawTimeUs(raw: RawOrtResult, rows: number): number {
  const s = raw.sweep;
  if (rows <= s[0]!.batch) return s[0]!.runUs.p50;
  for (let i = 1; i < s.length; i++) {
    const a = s[i - 1]!;
    const b = s[i]!;
    if (rows <= b.batch) return a.runUs.p50 + ((rows - a.batch) / (b.batch - a.batch)) * (b.runUs.p50 - a.runUs.p50);
  }
  const last = s[s.length - 1]!;
  return (last.runUs.p50 * rows) / last.batch;
}

/** Reset the model's histograms, run `load`, and break the run down. */
export async function withBreakdown(host: ChildHandle, model: string, raw: RawOrtResult, load: () => Promise<LoadResult>): Promise<{ result: LoadResult; breakdown: Breakdown }> {
  await host.call('reset', { model });
  const result = await load();
  const after = await host.call<Stats>('stats', { model });
  // Histograms span warm-up and drain too; rows per batch and batch latency are their means.
  const rowsPerBatch = after.latency.batchRows.mean;
  const batchUs = after.latency.batchRunUs.mean;
  const rawUs = rawTimeUs(raw, rowsPerBatch);
  const batchesPerSec = result.throughput / Math.max(1, rowsPerBatch);
  const cycleUs = 1e6 / Math.max(1e-9, batchesPerSec);
  return {
    result,
    breakdown: { batchesPerSec, rowsPerBatch, batchUs, rawUs, overheadUs: batchUs - rawUs, idleUs: Math.max(0, cycleUs - batchUs) },
  };
}

export function describeBreakdown(b: Breakdown): string {
  return `server: ${fmtInt(b.batchesPerSec)} batches/s of ${b.rowsPerBatch.toFixed(0)} rows; batch latency ${fmtUs(b.batchUs)} (mean) vs raw ORT ${fmtUs(b.rawUs)} for that size -> ${fmtUs(b.overheadUs)} hand-off overhead per batch; replica idle ${fmtUs(b.idleUs)} between batches`;
}

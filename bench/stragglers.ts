/**
 * The Clipper paper's straggler experiment: an application ensembles 1, 2, 4 and 8 models whose
 * latency has a heavy tail (most calls a couple of ms, a few tens of ms). With straggler
 * mitigation the app answers at its SLO with whatever arrived; without it, it waits for every
 * model. Reports p99 latency and the fraction of answers that had the full ensemble.
 *
 *   node dist/bench/stragglers.js [--queries 1000] [--slo-ms 20] [--concurrency 8]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer } from '../src/server.js';
import { silentLogger } from '../src/log.js';
import { SkiffClient } from '../src/client/ws-client.js';
import { newHistogram } from '../src/metrics/latency.js';
import { writeModelConfig } from '../src/modelgen/fixtures.js';

/** A 4-class "classifier" with a latency tail: base ms, and with probability p a straggle of tail ms. */
function writeTailModel(repo: string, name: string, seed: number, o: { baseMs: number; p: number; tailMs: number }): void {
  const dir = join(repo, name, '1');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.mjs'), `
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let s = ${seed >>> 0} || 1;
const rnd = () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 4294967296);
export const metadata = {
  inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 4] }],
};
export function predict(inputs) {
  const ms = ${o.baseMs} + (rnd() < ${o.p} ? ${o.tailMs} * (0.5 + rnd()) : 0);
  Atomics.wait(sleeper, 0, 0, ms);
  const n = inputs.input.shape[0];
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) out[i * 4 + (i % 4)] = 1;
  return { probabilities: { datatype: 'FP32', shape: [n, 4], data: out } };
}
`);
  writeModelConfig(repo, name, { cache_bytes: 0, max_batch_size: 16 });
}

export interface StragglerRow {
  models: number;
  mitigation: boolean;
  p50Ms: number;
  p99Ms: number;
  fullEnsemble: number;
  defaults: number;
}

export async function runStragglers(o: { queries: number; sloMs: number; concurrency: number }): Promise<StragglerRow[]> {
  const repo = mkdtempSync(join(tmpdir(), 'skiff-stragglers-'));
  const names = Array.from({ length: 8 }, (_, i) => `tail${i}`);
  names.forEach((n, i) => writeTailModel(repo, n, i + 1, { baseMs: 2, p: 0.05, tailMs: 40 }));
  const server = await startServer({ modelRepository: repo, port: 0, adminPort: -1, logger: silentLogger });
  const client = await SkiffClient.connect(`ws://127.0.0.1:${server.port}/ws`);
  const rows: StragglerRow[] = [];
  try {
    for (const k of [1, 2, 4, 8]) {
      for (const mitigation of [true, false]) {
        const app = `ens${k}_${mitigation ? 'on' : 'off'}`;
        server.apps.add({
          name: app, input_type: 'floats', input_shape: [4], latency_slo_micros: o.sloMs * 1000, default_output: -1,
          policy: k === 1 ? 'single' : 'exp4', models: names.slice(0, k), straggler_mitigation: mitigation, seed: 1,
        });
        const h = newHistogram();
        let full = 0;
        let defaults = 0;
        let next = 0;
        const x = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
        await Promise.all(Array.from({ length: o.concurrency }, async () => {
          while (next < o.queries) {
            next++;
            const t0 = performance.now();
            const r = await client.infer({ app, inputs: [{ name: 'input', datatype: 'FP32', shape: [4], data: x }] });
            h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
            if (r.isDefault) defaults++;
            else if ((r.modelsMissing ?? []).length === 0) full++;
          }
        }));
        rows.push({ models: k, mitigation, p50Ms: h.getValueAtPercentile(50) / 1000, p99Ms: h.getValueAtPercentile(99) / 1000, fullEnsemble: full / o.queries, defaults });
      }
    }
  } finally {
    await client.close();
    await server.close();
    rmSync(repo, { recursive: true, force: true });
  }
  return rows;
}

export function formatStragglers(rows: StragglerRow[], sloMs: number): string {
  const lines = [
    `Straggler mitigation (SLO ${sloMs} ms; each model: 2 ms, 5% of calls +20..60 ms)`,
    '| models | mitigation | p50 ms | p99 ms | full ensemble | defaults |',
    '|---:|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.models} | ${r.mitigation ? 'on' : 'off'} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${(r.fullEnsemble * 100).toFixed(1)}% | ${r.defaults} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const { values } = parseArgs({ options: { queries: { type: 'string', default: '1000' }, 'slo-ms': { type: 'string', default: '20' }, concurrency: { type: 'string', default: '8' } } });
  const o = { queries: Number(values.queries), sloMs: Number(values['slo-ms']), concurrency: Number(values.concurrency) };
  const rows = await runStragglers(o);
  console.log(formatStragglers(rows, o.sloMs));
}

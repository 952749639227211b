/**
 * Turning load results into text: the one-line console summary, the Markdown table, and the
 * results folder (JSON + Markdown + SVG plot).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmtInt, fmtUs } from './format.js';
import { latencyThroughputSvg, type PlotSeries } from './svg.js';
import { describeServerWindow } from './server-stats.js';
import type { LoadResult } from './spec.js';

export function describeMode(r: LoadResult): string {
  const m = r.mode.kind === 'open' ? `open ${fmtInt(r.mode.rate)}/s` : `closed ${r.mode.concurrency} in flight`;
  return `${r.protocol} ${m}${r.protocol !== 'http' ? `, ${r.requestsPerFrame}/frame` : ''}, ${r.connections} conn`;
}

/** One line: throughput, percentiles, errors, defaults and any generator warning. */
export function summaryLine(r: LoadResult): string {
  const l = r.latencyUs;
  let s = `${r.label ? `${r.label}: ` : ''}${describeMode(r)} -> ${fmtInt(r.throughput)} req/s  p50 ${fmtUs(l.p50)}  p90 ${fmtUs(l.p90)}  p99 ${fmtUs(l.p99)}  p99.9 ${fmtUs(l.p999)}  max ${fmtUs(l.max)}`;
  s += `  errors ${fmtInt(r.errors)}  defaults ${fmtInt(r.defaults)}`;
  if (r.errors > 0) s += ` (${Object.entries(r.errorCodes).map(([k, v]) => `${k} ${v}`).join(', ')})`;
  if (r.server) s += `\n    server: ${describeServerWindow(r.server)}`;
  if (r.generator.bottleneck) s += `\n    ! generator may be the bottleneck: ${r.generator.reasons.join('; ')}`;
  return s;
}

export function markdownTable(runs: LoadResult[]): string {
  const head = '| run | load | req/s | p50 | p90 | p99 | p99.9 | max | errors | defaults | main µs/query | B/query | GC max (scavenge / mark-compact) | generator |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n';
  return head + runs.map((r) => {
    const l = r.latencyUs;
    const gen = r.generator.bottleneck ? `bottleneck: ${r.generator.reasons.join('; ')}` : `ok (ELU ${r.generator.elu.map((e) => e.toFixed(2)).join('/')})`;
    const sv = r.server;
    const cpu = sv && Number.isFinite(sv.cpuUsPerQuery) ? sv.cpuUsPerQuery.toFixed(2) : '';
    const bytes = sv?.bytesPerQuery !== undefined && Number.isFinite(sv.bytesPerQuery) ? fmtInt(sv.bytesPerQuery) : '';
    const gc = sv?.heap ? `${sv.heap.gc.scavenge.maxMs.toFixed(1)} / ${sv.heap.gc['mark-compact'].maxMs.toFixed(1)} ms` : '';
    return `| ${r.label ?? r.model} | ${describeMode(r)} | ${fmtInt(r.throughput)} | ${fmtUs(l.p50)} | ${fmtUs(l.p90)} | ${fmtUs(l.p99)} | ${fmtUs(l.p999)} | ${fmtUs(l.max)} | ${fmtInt(r.errors)} | ${fmtInt(r.defaults)} | ${cpu} | ${bytes} | ${gc} | ${gen} |`;
  }).join('\n') + '\n';
}

/** A fresh `bench/results/<timestamp>`-style folder name for now. */
export function timestampName(d = new Date()): string {
  return d.toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

export interface ResultsFolder {
  dir: string;
  files: string[];
}

/**
 * Write `results.json` (everything), `results.md` (the `markdown` preamble, then the runs
 * table) and `latency-throughput.svg` (the series) into `dir`, creating it.
 */
export function writeResults(dir: string, o: { title: string; markdown: string; json: unknown; runs: LoadResult[]; series: PlotSeries[] }): ResultsFolder {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'results.json'), join(dir, 'results.md'), join(dir, 'latency-throughput.svg')];
  writeFileSync(files[0]!, JSON.stringify(o.json, null, 2) + '\n');
  writeFileSync(files[1]!, `# ${o.title}\n\n${o.markdown}\n## All runs\n\n${markdownTable(o.runs)}\n![latency vs throughput](latency-throughput.svg)\n`);
  writeFileSync(files[2]!, latencyThroughputSvg(o.title, o.series));
  return { dir, files };
}

/**
 * Plot series from labelled runs: runs with the same `series` name form one curve. When some
 * series are dedicated sweeps (name ending in "(sweep)"), only those are plotted.
 */
export function seriesOf(runs: { series?: string; result: LoadResult }[]): PlotSeries[] {
  if (runs.some((r) => r.series?.endsWith('(sweep)'))) runs = runs.filter((r) => r.series?.endsWith('(sweep)'));
  const by = new Map<string, PlotSeries>();
  for (const r of runs) {
    if (!r.series || r.result.throughput <= 0) continue;
    let s = by.get(r.series);
    if (!s) by.set(r.series, (s = { name: r.series, points: [] }));
    s.points.push({ throughput: r.result.throughput, p50Us: r.result.latencyUs.p50, p99Us: r.result.latencyUs.p99 });
  }
  return [...by.values()];
}

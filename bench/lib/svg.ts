/**
 * A latency-versus-throughput plot as a standalone SVG document, written by hand (no plotting
 * package): x = answered requests per second (linear), y = latency (log scale), one colour
 * per series, p99 as a solid line with dots and p50 dashed.
 */
export interface PlotPoint {
  throughput: number;
  p50Us: number;
  p99Us: number;
}

export interface PlotSeries {
  name: string;
  points: PlotPoint[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const W = 900;
const H = 540;
const M = { left: 80, right: 260, top: 50, bottom: 60 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceStep(span: number, ticks: number): number {
  const raw = span / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

function latencyLabel(us: number): string {
  return us >= 1_000_000 ? `${us / 1_000_000} s` : us >= 1000 ? `${us / 1000} ms` : `${us} µs`;
}

export function latencyThroughputSvg(title: string, series: PlotSeries[]): string {
  const pts = series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...pts.map((p) => p.throughput)) * 1.05;
  const lats = pts.flatMap((p) => [p.p50Us, p.p99Us]).filter((v) => v > 0);
  const loExp = Math.floor(Math.log10(Math.max(1, Math.min(...(lats.length ? lats : [100])))));
  const hiExp = Math.max(loExp + 1, Math.ceil(Math.log10(Math.max(...(lats.length ? lats : [1000])))));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number): number => M.left + (v / maxX) * pw;
  const y = (us: number): number => M.top + ph - ((Math.log10(Math.max(us, 10 ** loExp)) - loExp) / (hiExp - loExp)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="28" font-size="16" font-weight="bold">${esc(title)}</text>`);
  // Grid and axes.
  const step = niceStep(maxX, 6);
  for (let v = 0; v <= maxX; v += step) {
    out.push(`<line x1="${x(v).toFixed(1)}" y1="${M.top}" x2="${x(v).toFixed(1)}" y2="${M.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x(v).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${v >= 1000 ? `${v / 1000}k` : v}</text>`);
  }
  for (let e = loExp; e <= hiExp; e++) {
    for (const m of [1, 2, 5]) {
      const us = m * 10 ** e;
      if (us > 10 ** hiExp) break;
      out.push(`<line x1="${M.left}" y1="${y(us).toFixed(1)}" x2="${M.left + pw}" y2="${y(us).toFixed(1)}" stroke="${m === 1 ? '#ddd' : '#f3f3f3'}"/>`);
      if (m === 1) out.push(`<text x="${M.left - 8}" y="${(y(us) + 4).toFixed(1)}" text-anchor="end">${latencyLabel(us)}</text>`);
    }
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 15}" text-anchor="middle">throughput (answered requests / s)</text>`);
  out.push(`<text transform="translate(20 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">latency (log scale)</text>`);
  // Series.
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const sorted = [...s.points].sort((a, b) => a.throughput - b.throughput);
    const path = (f: (p: PlotPoint) => number): string => sorted.map((p, j) => `${j ? 'L' : 'M'}${x(p.throughput).toFixed(1)},${y(f(p)).toFixed(1)}`).join(' ');
    if (sorted.length > 0) {
      out.push(`<path d="${path((p) => p.p99Us)}" fill="none" stroke="${color}" stroke-width="2"/>`);
      out.push(`<path d="${path((p) => p.p50Us)}" fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="5 4"/>`);
      for (const p of sorted) out.push(`<circle cx="${x(p.throughput).toFixed(1)}" cy="${y(p.p99Us).toFixed(1)}" r="3" fill="${color}"/>`);
    }
    const ly = M.top + 10 + i * 20;
    const lx = M.left + pw + 16;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  const ly = M.top + 20 + series.length * 20;
  out.push(`<text x="${M.left + pw + 16}" y="${ly}" fill="#555">solid: p99, dashed: p50</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

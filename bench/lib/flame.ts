/**
 * A flame graph of a summarised CPU profile (lib/cpuprofile.ts) as a standalone SVG document,
 * written by hand like lib/svg.ts: the root at the bottom, callees stacked above their callers,
 * widths proportional to time, colours by category, a tooltip (`<title>`) per frame.
 */
import { CATEGORIES, type Category, type FlameNode } from './cpuprofile.js';

const W = 1200;
const ROW = 16;
const TOP = 40;
const LEGEND = 26;
/** Frames narrower than this (px) are not drawn. */
const MIN_PX = 0.3;

const COLOR: Record<Category, string> = {
  'uWS/IO': '#6baed6',
  'FlatBuffers/JSON decode/encode': '#fd8d3c',
  engine: '#74c476',
  frontend: '#9e9ac8',
  GC: '#d62728',
  idle: '#d9d9d9',
  other: '#bdbdbd',
};

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function depth(n: FlameNode): number {
  return 1 + n.children.reduce((a, c) => Math.max(a, depth(c)), 0);
}

export function flameGraphSvg(title: string, root: FlameNode): string {
  const rows = Math.min(depth(root), 200);
  const H = TOP + rows * ROW + LEGEND + 10;
  const scale = root.valueUs > 0 ? W / root.valueUs : 0;
  const out: string[] = [];
  const draw = (n: FlameNode, x: number, d: number): void => {
    const w = n.valueUs * scale;
    if (w < MIN_PX || d >= rows) return;
    const y = TOP + (rows - 1 - d) * ROW;
    const label = `${n.name} (${(n.valueUs / 1000).toFixed(1)} ms, ${((100 * n.valueUs) / root.valueUs).toFixed(1)}%)`;
    out.push(`<g><title>${esc(label)}</title><rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${ROW - 1}" fill="${COLOR[n.category]}"/>`
      + (w > 30 ? `<text x="${(x + 3).toFixed(2)}" y="${y + ROW - 4}">${esc(n.name.slice(0, Math.floor((w - 6) / 6.5)))}</text>` : '') + '</g>');
    let cx = x;
    for (const c of n.children) {
      draw(c, cx, d + 1);
      cx += c.valueUs * scale;
    }
  };
  draw(root, 0, 0);
  const legend = CATEGORIES.map((c, i) => `<rect x="${10 + i * 165}" y="${H - LEGEND}" width="12" height="12" fill="${COLOR[c]}"/><text x="${26 + i * 165}" y="${H - LEGEND + 10}">${esc(c)}</text>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="monospace" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>
${out.join('\n')}
${legend}
</svg>
`;
}

/**
 * Reading a V8 .cpuprofile (what `node --cpu-prof` writes) for `npm run bench -- --profile`:
 * self and total time per function, the main thread's time by category, and the call tree
 * weighted by time for the flame graph, optionally restricted to a time window (a target's
 * measured span, in the profile's clock: µs of CLOCK_MONOTONIC, as process.hrtime).
 *
 * A sample's weight is the time until the next sample (the last one gets the mean interval).
 * Categories are decided from the leaf towards the root: the first frame whose script belongs
 * to a category decides; native functions and builtins (no script) count toward their caller.
 */

export interface CallFrame {
  functionName: string;
  scriptId?: string | number;
  url: string;
  lineNumber: number;
  columnNumber?: number;
}

export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export const CATEGORIES = ['uWS/IO', 'FlatBuffers/JSON decode/encode', 'engine', 'frontend', 'GC', 'idle', 'other'] as const;
export type Category = (typeof CATEGORIES)[number];

/** The category a single frame names, or null (look at its caller). */
export function frameCategory(f: CallFrame): Category | null {
  const n = f.functionName;
  const u = f.url;
  if (n === '(idle)') return 'idle';
  if (n === '(garbage collector)') return 'GC';
  // Native code outside any JS frame: in the server under test mostly uWS and libuv.
  if (n === '(program)') return 'uWS/IO';
  if (n === '(root)') return null;
  if (!u) return null;
  if (u.includes('/node_modules/flatbuffers/') || u.includes('/src/protocol/')) return 'FlatBuffers/JSON decode/encode';
  if (u.includes('/src/engine/') || u.includes('/workers/') || u.includes('/src/tensor/')) return 'engine';
  if (u.includes('uWebSockets.js') || u.includes('uws') || u.startsWith('node:net') || u.startsWith('node:internal/stream') || u.startsWith('node:internal/net')) return 'uWS/IO';
  if (u.includes('/src/frontend/') || u.includes('/src/http/')) return 'frontend';
  return null;
}

export interface FunctionTime {
  name: string;
  /** Script and 1-based line, shortened to the project-relative path where possible. */
  where: string;
  selfUs: number;
  totalUs: number;
  category: Category;
}

export interface FlameNode {
  name: string;
  category: Category;
  valueUs: number;
  children: FlameNode[];
}

export interface ProfileSummary {
  /** Time covered by the samples taken into account (µs). */
  totalUs: number;
  samples: number;
  functions: FunctionTime[];
  categories: Record<Category, number>;
  flame: FlameNode;
}

/** A script URL shortened to what follows the project's top folders or node_modules. */
export function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + '/node_modules/'.length);
  const dist = u.lastIndexOf('/dist/');
  if (dist >= 0) return u.slice(dist + '/dist/'.length);
  const m = /\/((?:src|bench|workers|test)\/.*)$/.exec(u);
  return m ? m[1]! : u;
}

function frameName(f: CallFrame): string {
  return f.functionName || '(anonymous)';
}

function frameKey(f: CallFrame): string {
  const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '';
  return `${frameName(f)}\u0000${where}`;
}

/** Per-sample weights (µs) and absolute times (µs, the profile's clock). */
export function sampleTimes(p: CpuProfile): { at: number[]; weight: number[] } {
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const at: number[] = new Array(samples.length);
  let t = p.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    at[i] = t;
  }
  const mean = samples.length > 1 ? (at[samples.length - 1]! - at[0]!) / (samples.length - 1) : 0;
  const weight = at.map((v, i) => (i + 1 < at.length ? Math.max(0, at[i + 1]! - v) : mean));
  return { at, weight };
}

/** Summarise `p`, counting only samples taken within [window[0], window[1]) when given. */
export function summarizeProfile(p: CpuProfile, window?: [number, number]): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const rootId = p.nodes.find((n) => !parent.has(n.id))?.id ?? p.nodes[0]?.id;

  const nodeWeight = new Map<number, number>();
  const { at, weight } = sampleTimes(p);
  const samples = p.samples ?? [];
  let totalUs = 0;
  let counted = 0;
  for (let i = 0; i < samples.length; i++) {
    if (window && (at[i]! < window[0] || at[i]! >= window[1])) continue;
    nodeWeight.set(samples[i]!, (nodeWeight.get(samples[i]!) ?? 0) + weight[i]!);
    totalUs += weight[i]!;
    counted++;
  }

  // Category of each node: its own frame's, else its caller's.
  const catCache = new Map<number, Category>();
  const categoryOf = (id: number): Category => {
    const hit = catCache.get(id);
    if (hit) return hit;
    const chain: number[] = [];
    let cur: number | undefined = id;
    let found: Category = 'other';
    while (cur !== undefined) {
      const c = catCache.get(cur);
      if (c) {
        found = c;
        break;
      }
      chain.push(cur);
      const own = frameCategory(byId.get(cur)!.callFrame);
      if (own) {
        found = own;
        break;
      }
      cur = parent.get(cur);
    }
    // Nodes between the leaf and the deciding frame share its category.
    for (const c of chain) if (!catCache.has(c)) catCache.set(c, found);
    return found;
  };

  const categories = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  const fns = new Map<string, FunctionTime>();
  const fnOf = (n: ProfileNode): FunctionTime => {
    const key = frameKey(n.callFrame);
    let f = fns.get(key);
    if (!f) {
      f = { name: frameName(n.callFrame), where: n.callFrame.url ? `${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : '', selfUs: 0, totalUs: 0, category: categoryOf(n.id) };
      fns.set(key, f);
    }
    return f;
  };
  for (const [id, w] of nodeWeight) {
    const leaf = byId.get(id);
    if (!leaf) continue;
    categories[categoryOf(id)] += w;
    fnOf(leaf).selfUs += w;
    // Total: once per function on the stack (recursion counted once).
    const seen = new Set<FunctionTime>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (cur === rootId && n.callFrame.functionName === '(root)') break;
      const f = fnOf(n);
      if (!seen.has(f)) {
        seen.add(f);
        f.totalUs += w;
      }
    }
  }

  const build = (id: number): FlameNode | null => {
    const n = byId.get(id)!;
    const children = (n.children ?? []).map(build).filter((c): c is FlameNode => c !== null);
    const valueUs = (nodeWeight.get(id) ?? 0) + children.reduce((a, c) => a + c.valueUs, 0);
    if (valueUs <= 0) return null;
    children.sort((a, b) => a.name.localeCompare(b.name));
    return { name: `${frameName(n.callFrame)}${n.callFrame.url ? ` ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : ''}`, category: categoryOf(id), valueUs, children };
  };
  const flame = (rootId !== undefined ? build(rootId) : null) ?? { name: '(root)', category: 'other' as Category, valueUs: 0, children: [] };
  flame.name = 'all';

  const functions = [...fns.values()].sort((a, b) => b.selfUs - a.selfUs || b.totalUs - a.totalUs);
  return { totalUs, samples: counted, functions, categories, flame };
}

const ms = (us: number): string => (us / 1000).toFixed(1);
const pct = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');

/** Markdown: the category shares, then the top `n` functions by self time (with total time). */
export function profileMarkdown(title: string, s: ProfileSummary, n = 30): string {
  const busy = s.totalUs - s.categories.idle;
  const cats = CATEGORIES.map((c) => `| ${c} | ${ms(s.categories[c])} | ${pct(s.categories[c], s.totalUs)} | ${c === 'idle' ? '' : pct(s.categories[c], busy)} |`).join('\n');
  const rows = s.functions.slice(0, n).map((f, i) => `| ${i + 1} | \`${f.name.replace(/\|/g, '\\|')}\` | ${f.where} | ${f.category} | ${ms(f.selfUs)} | ${pct(f.selfUs, s.totalUs)} | ${ms(f.totalUs)} | ${pct(f.totalUs, s.totalUs)} |`).join('\n');
  return `## ${title}\n\n${s.samples} samples, ${ms(s.totalUs)} ms of the main thread (${pct(busy, s.totalUs)} not idle).\n\n`
    + `| category | ms | share | share of busy |\n|---|---:|---:|---:|\n${cats}\n\n`
    + `Top ${Math.min(n, s.functions.length)} functions by self time:\n\n`
    + `| # | function | where | category | self ms | self | total ms | total |\n|---:|---|---|---|---:|---:|---:|---:|\n${rows}\n`;
}

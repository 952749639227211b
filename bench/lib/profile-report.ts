/**
 * `npm run bench -- --profile`: after the run, the server's main-thread .cpuprofile (written by
 * `node --cpu-prof` when the server exits) is cut into the targets' spans and each span written
 * as a top-functions table (profile.md) and a flame graph (flame-<target>.svg), plus the whole
 * run. The spans come from the server's own clock (`monoClock` over IPC), the profile's clock.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CATEGORIES, profileMarkdown, summarizeProfile, type Category, type CpuProfile } from './cpuprofile.js';
import { flameGraphSvg } from './flame.js';

export interface ProfileSpan {
  id: string;
  /** µs, process.hrtime of the server. */
  startUs: number;
  endUs: number;
}

/** Node's file name for a thread's profile: CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile (thread 0 = main). */
export function mainThreadProfile(dir: string, pid: number): string | null {
  const re = new RegExp(`^CPU\\.\\d+\\.\\d+\\.${pid}\\.0\\.\\d+\\.cpuprofile$`);
  const f = readdirSync(dir).find((n) => re.test(n));
  return f ? join(dir, f) : null;
}

export interface ProfileDigest {
  id: string;
  samples: number;
  ms: number;
  categoriesMs: Record<Category, number>;
  top: { name: string; where: string; category: Category; selfMs: number; totalMs: number }[];
}

export function writeProfileReport(dir: string, file: string, spans: ProfileSpan[]): { files: string[]; digests: ProfileDigest[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const parts: string[] = [`# Main-thread CPU profile of the server under test\n\nFrom \`${file}\` (node --cpu-prof). Categories: see docs/benchmarks.md.\n`];
  const files: string[] = [];
  const digests: ProfileDigest[] = [];
  const all: (ProfileSpan | { id: string })[] = [...spans, { id: 'whole-run' }];
  for (const s of all) {
    const window: [number, number] | undefined = 'startUs' in s ? [s.startUs, s.endUs] : undefined;
    const sum = summarizeProfile(profile, window);
    parts.push(profileMarkdown(`${s.id}${window ? '' : ' (server start to exit)'}`, sum) + `\n![flame graph](flame-${s.id}.svg)\n`);
    const svg = join(dir, `flame-${s.id}.svg`);
    writeFileSync(svg, flameGraphSvg(`Skiff main thread: ${s.id} (${(sum.totalUs / 1000).toFixed(0)} ms, ${sum.samples} samples)`, sum.flame));
    files.push(svg);
    digests.push({
      id: s.id, samples: sum.samples, ms: sum.totalUs / 1000,
      categoriesMs: Object.fromEntries(CATEGORIES.map((c) => [c, Math.round(sum.categories[c]) / 1000])) as Record<Category, number>,
      top: sum.functions.slice(0, 30).map((f) => ({ name: f.name, where: f.where, category: f.category, selfMs: Math.round(f.selfUs) / 1000, totalMs: Math.round(f.totalUs) / 1000 })),
    });
  }
  const md = join(dir, 'profile.md');
  writeFileSync(md, parts.join('\n'));
  files.unshift(md);
  return { files, digests };
}

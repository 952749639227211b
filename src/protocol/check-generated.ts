/**
 * Keeps src/protocol/generated in step with schemas/skiff.fbs.
 *
 *   node dist/src/protocol/check-generated.js           exit 1 with a diff summary on drift
 *   node dist/src/protocol/check-generated.js --write   rewrite the committed files
 *
 * Without `flatc` on PATH the check is skipped (exit 0). Generation is
 * `flatc --ts --ts-flat-files` (flat files: the default multi-file output uses extensionless
 * imports that NodeNext rejects) followed by `postProcess`, so regenerating reproduces the
 * committed files byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const SCHEMA_PATH = 'schemas/skiff.fbs';
export const GENERATED_DIR = 'src/protocol/generated';

/** The committed generated code: TypeScript for the server and clients, Python for python/skiff/client.py. */
export type Target = 'ts' | 'python';
const TARGETS: Readonly<Record<Target, { dir: string; args: string[]; sub: string; ext: string }>> = {
  ts: { dir: GENERATED_DIR, args: ['--ts', '--ts-flat-files'], sub: '', ext: '.ts' },
  python: { dir: 'python/skiff/wire', args: ['--python'], sub: 'skiff/wire', ext: '.py' },
};
/** The flatc release the committed files were generated with (Debian flatbuffers-compiler). */
export const EXPECTED_FLATC_VERSION = '2.0.8';

export interface FileDiff {
  file: string;
  kind: 'missing' | 'stale' | 'changed';
  /** For 'changed': 1-based first differing line and the number of differing lines. */
  firstLine?: number;
  changedLines?: number;
  expected?: string;
  actual?: string;
}

export interface CheckResult {
  status: 'skipped' | 'ok' | 'mismatch' | 'written';
  flatcVersion?: string;
  diffs: FileDiff[];
  message: string;
}

/** `flatc --version` output ("2.0.8"), or undefined when flatc is not on PATH. */
export function flatcVersion(): string | undefined {
  const r = spawnSync('flatc', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  const m = /(\d+\.\d+\.\d+)/.exec(r.stdout);
  return m ? m[1] : r.stdout.trim();
}

/**
 * Deterministic fix-ups applied to flatc's output. flatc 2.0.8's flat-file TypeScript compiles
 * as-is under our NodeNext tsconfig with the flatbuffers 25.9.23 runtime (its only import is the
 * bare 'flatbuffers' specifier), so no import rewriting is needed. The one rule: LF line endings
 * and exactly one final newline (flatc ends the file with a blank line, which editors and
 * whitespace linters strip), so the committed bytes are stable whoever touches them.
 */
export function postProcess(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/\n*$/, '\n');
}

/**
 * Runs flatc on the schema into `outDir` and post-processes every file it wrote; returns the
 * directory holding them (Python's land in the schema's namespace path) and their names.
 */
export function generateInto(root: string, outDir: string, target: Target = 'ts'): string[] {
  const t = TARGETS[target];
  const r = spawnSync('flatc', [...t.args, '-o', outDir, join(root, SCHEMA_PATH)], {
    encoding: 'utf8',
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`flatc failed (exit ${r.status}): ${r.stderr.trim()}`);
  const dir = join(outDir, t.sub);
  const files = readdirSync(dir).filter((f) => f.endsWith(t.ext)).sort();
  for (const f of files) {
    const p = join(dir, f);
    writeFileSync(p, postProcess(readFileSync(p, 'utf8')));
  }
  return files;
}

function diffText(file: string, expected: string, actual: string): FileDiff | undefined {
  if (expected === actual) return undefined;
  const a = expected.split('\n');
  const b = actual.split('\n');
  let first = 0;
  let changed = 0;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      if (changed === 0) first = i;
      changed++;
    }
  }
  return {
    file, kind: 'changed', firstLine: first + 1, changedLines: changed,
    expected: a[first] ?? '<end of file>', actual: b[first] ?? '<end of file>',
  };
}

/** Walks up from this module to the directory holding the schema (works from src/ and dist/). */
export function findRepoRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, SCHEMA_PATH))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find ${SCHEMA_PATH} above ${start}`);
    dir = up;
  }
}

/**
 * Regenerates into a temp dir and compares with the committed files ("expected" = freshly
 * generated, "actual" = committed). With `write`, replaces the committed files instead.
 */
export function checkGenerated(opts: { root?: string; write?: boolean; target?: Target } = {}): CheckResult {
  const target = TARGETS[opts.target ?? 'ts'];
  const GENERATED_DIR = target.dir;
  const version = flatcVersion();
  if (version === undefined) {
    return { status: 'skipped', diffs: [], message: 'flatc not found on PATH; generated-code check skipped' };
  }
  const root = opts.root ?? findRepoRoot();
  const committedDir = join(root, GENERATED_DIR);
  const base = mkdtempSync(join(tmpdir(), 'skiff-flatc-'));
  try {
    const generated = generateInto(root, base, opts.target ?? 'ts');
    const tmp = join(base, target.sub);
    const committed = existsSync(committedDir)
      ? readdirSync(committedDir).filter((f) => f.endsWith(target.ext)).sort()
      : [];
    const diffs: FileDiff[] = [];
    for (const f of generated) {
      const fresh = readFileSync(join(tmp, f), 'utf8');
      if (!committed.includes(f)) diffs.push({ file: f, kind: 'missing' });
      else {
        const d = diffText(f, fresh, readFileSync(join(committedDir, f), 'utf8'));
        if (d) diffs.push(d);
      }
    }
    for (const f of committed) if (!generated.includes(f)) diffs.push({ file: f, kind: 'stale' });

    const note = version === EXPECTED_FLATC_VERSION ? '' : ` (flatc ${version}; files were made with ${EXPECTED_FLATC_VERSION})`;
    if (diffs.length === 0) {
      return { status: 'ok', flatcVersion: version, diffs, message: `${GENERATED_DIR} matches ${SCHEMA_PATH}${note}` };
    }
    if (opts.write) {
      for (const d of diffs) {
        const target = join(committedDir, d.file);
        if (d.kind === 'stale') unlinkSync(target);
        else writeFileSync(target, readFileSync(join(tmp, d.file)));
      }
      return { status: 'written', flatcVersion: version, diffs, message: `rewrote ${diffs.length} file(s) in ${GENERATED_DIR}${note}` };
    }
    return {
      status: 'mismatch', flatcVersion: version, diffs,
      message: `${GENERATED_DIR} is out of date with ${SCHEMA_PATH}${note}; run with --write to regenerate`,
    };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

export function formatResult(r: CheckResult): string {
  const lines = [r.message];
  for (const d of r.diffs) {
    if (d.kind === 'changed') {
      lines.push(`  ${d.file}: ${d.changedLines} line(s) differ, first at line ${d.firstLine}`);
      lines.push(`    generated: ${d.expected}`);
      lines.push(`    committed: ${d.actual}`);
    } else {
      lines.push(`  ${d.file}: ${d.kind === 'missing' ? 'generated but not committed' : 'committed but no longer generated'}`);
    }
  }
  return lines.join('\n');
}

function main(argv: string[]): number {
  let failed = false;
  for (const target of Object.keys(TARGETS) as Target[]) {
    const r = checkGenerated({ write: argv.includes('--write'), target });
    (r.status === 'mismatch' ? console.error : console.log)(formatResult(r));
    failed ||= r.status === 'mismatch';
  }
  return failed ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}

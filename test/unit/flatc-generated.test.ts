import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EXPECTED_FLATC_VERSION, GENERATED_DIR, SCHEMA_PATH, checkGenerated, findRepoRoot, flatcVersion, formatResult, postProcess,
} from '../../src/protocol/check-generated.js';

// The committed code is flatc 2.0.8's (Debian 12, what CI runs); another flatc generates other
// files (23.x names them differently), so only that version can compare.
const version = flatcVersion();
const haveFlatc = version === EXPECTED_FLATC_VERSION;
const noFlatc = version === undefined ? 'flatc not on PATH' : `flatc ${version} here; the committed code is flatc ${EXPECTED_FLATC_VERSION}'s`;

test('post-processing is deterministic: LF endings, exactly one final newline', () => {
  assert.equal(postProcess('a\r\nb\n\n'), 'a\nb\n');
  assert.equal(postProcess('a\nb'), 'a\nb\n');
  assert.equal(postProcess(postProcess('x\n\n\n')), 'x\n');
});

test('committed generated code matches the schema', (t) => {
  if (!haveFlatc) {
    t.skip(noFlatc);
    return;
  }
  const r = checkGenerated();
  assert.equal(r.status, 'ok', formatResult(r));
  const py = checkGenerated({ target: 'python' });
  assert.equal(py.status, 'ok', formatResult(py));
});

test('the check reports drift and --write repairs it', (t) => {
  if (!haveFlatc) {
    t.skip(noFlatc);
    return;
  }
  const root = findRepoRoot();
  const tmp = mkdtempSync(join(tmpdir(), 'skiff-checkgen-test-'));
  try {
    mkdirSync(join(tmp, 'schemas'));
    cpSync(join(root, SCHEMA_PATH), join(tmp, SCHEMA_PATH));
    cpSync(join(root, GENERATED_DIR), join(tmp, GENERATED_DIR), { recursive: true });
    const file = join(tmp, GENERATED_DIR, 'skiff_generated.ts');
    const original = readFileSync(file, 'utf8');
    assert.equal(checkGenerated({ root: tmp }).status, 'ok');

    writeFileSync(file, original.replace('BYTES = 13', 'BYTES = 14'));
    writeFileSync(join(tmp, GENERATED_DIR, 'stale.ts'), 'export {};\n');
    const bad = checkGenerated({ root: tmp });
    assert.equal(bad.status, 'mismatch');
    const changed = bad.diffs.find((d) => d.file === 'skiff_generated.ts');
    assert.equal(changed?.kind, 'changed');
    assert.equal(changed?.changedLines, 1);
    assert.match(changed?.actual ?? '', /BYTES = 14/);
    assert.ok(bad.diffs.some((d) => d.file === 'stale.ts' && d.kind === 'stale'));
    assert.match(formatResult(bad), /--write/);

    assert.equal(checkGenerated({ root: tmp, write: true }).status, 'written');
    assert.equal(readFileSync(file, 'utf8'), original);
    assert.equal(existsSync(join(tmp, GENERATED_DIR, 'stale.ts')), false);
    assert.equal(checkGenerated({ root: tmp }).status, 'ok');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

/**
 * Crash test of the SQLite store: a writer process applies a seeded stream of store calls and
 * prints "ack N" after the N-th call returns; we SIGKILL it at a random moment, reopen the
 * file and require exactly the state after the acknowledged calls (or after one more: the call
 * in flight may have committed without being acknowledged), with an intact database.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import Database from 'better-sqlite3';
import { MemoryControlStore } from '../../src/store/memory-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { applyOp, opStream, snapshot, type StoreSnapshot } from './fixtures/store-ops.js';

const WRITER = fileURLToPath(new URL('./fixtures/store-writer.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'skiff-store-crash-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface CrashRun {
  acks: number;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Run the writer until it has acknowledged `killAfter` calls, then SIGKILL it; count every ack it printed. */
function runAndKill(dbPath: string, seed: number, mode: 'flushed' | 'unflushed', killAfter: number): Promise<CrashRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dbPath, String(seed), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let acks = 0;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        acks++;
        if (line !== `ack ${acks}`) {
          child.kill('SIGKILL');
          reject(new Error(`unexpected writer output ${JSON.stringify(line)} (expected ack ${acks})`));
        }
      }
      if (acks >= killAfter && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve({ acks, signal, stderr }));
  });
}

/** The state after the first `n` operations of the stream, replayed on the in-memory store. */
function expectedAfter(seed: number, counts: number[]): StoreSnapshot[] {
  const mem = new MemoryControlStore();
  const ops = opStream(seed);
  const out: StoreSnapshot[] = [];
  let done = 0;
  for (const n of counts) {
    for (; done < n; done++) applyOp(mem, ops.next().value, true);
    out.push(snapshot(mem));
  }
  return out;
}

function integrity(dbPath: string): string[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare('PRAGMA integrity_check').pluck().all() as string[];
  } finally {
    db.close();
  }
}

const controlPlane = (s: StoreSnapshot) => ({ apps: s.apps, versions: s.versions, current: s.current, replicas: s.replicas });

describe('SQLite store survives SIGKILL', () => {
  for (let round = 1; round <= 3; round++) {
    it(`round ${round}: every acknowledged change is present after kill -9`, async () => {
      const seed = (Math.random() * 2 ** 32) >>> 0;
      const killAfter = 150 + Math.floor(Math.random() * 150);
      const dbPath = join(root, `round${round}`, 'state.db');
      const run = await runAndKill(dbPath, seed, 'flushed', killAfter);
      const ctx = `seed ${seed}, kill after ${killAfter}, acks ${run.acks}`;
      assert.equal(run.signal, 'SIGKILL', `writer was not killed (${ctx}): ${run.stderr}`);
      assert.ok(run.acks >= killAfter, ctx);

      assert.deepEqual(integrity(dbPath), ['ok'], ctx);
      const store = openSqliteStore(dbPath, { flushIntervalMs: 60_000 });
      const got = snapshot(store);
      store.close();
      const [acked, plusInFlight] = expectedAfter(seed, [run.acks, run.acks + 1]);
      assert.ok(acked!.apps.length + acked!.versions.length > 0, 'the stream wrote control-plane data');
      if (!isDeepStrictEqual(got, plusInFlight)) assert.deepEqual(got, acked, `state after kill differs from the ${run.acks} acknowledged calls (${ctx})`);
    });
  }

  it('negative control: acknowledged but unflushed selection states are detected as missing', async () => {
    const seed = 0xc0ffee;
    const dbPath = join(root, 'unflushed', 'state.db');
    const run = await runAndKill(dbPath, seed, 'unflushed', 200);
    assert.equal(run.signal, 'SIGKILL', run.stderr);
    assert.deepEqual(integrity(dbPath), ['ok']);
    const store = openSqliteStore(dbPath, { flushIntervalMs: 60_000 });
    const got = snapshot(store);
    store.close();
    const [acked, plusInFlight] = expectedAfter(seed, [run.acks, run.acks + 1]);
    const wantStates = Object.values(acked!.states).flat().length;
    assert.ok(wantStates > 0, 'the acknowledged calls set selection states');
    assert.deepEqual(Object.values(got.states).flat(), [], 'no selection state reached the file');
    assert.ok(
      [acked, plusInFlight].some((want) => isDeepStrictEqual(controlPlane(got), controlPlane(want!))),
      'the control-plane part is still exactly the acknowledged one',
    );
  });
});

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { MemoryControlStore } from '../../src/store/memory-store.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION, schemaVersion, type Migration } from '../../src/store/migrations.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { StoreError, type ControlStore, type StoredApp, type StoredModelVersion } from '../../src/store/types.js';
import { applyOp, opStream, snapshot } from './fixtures/store-ops.js';

const root = mkdtempSync(join(tmpdir(), 'skiff-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;
/** A path in a directory that does not exist yet (the store creates it). */
const freshPath = (): string => join(root, `db${seq++}`, 'state.db');

/** A plain second connection, as another process (or the next server start) would see the file. */
function peek<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(2);
  }
  return performance.now() - t0;
}

const isClosed = (err: unknown): boolean => err instanceof StoreError && err.code === 'STORE_CLOSED';

function app(name: string, extra: Record<string, unknown> = {}): StoredApp {
  return { name, input_type: 'floats', latency_slo_micros: 20000, default_output: -1, policy: 'exp3', policy_params: { eta: 0.3 }, models: ['a', 'b:2'], ...extra };
}

function version(model: string, v: number, extra: Partial<StoredModelVersion> = {}): StoredModelVersion {
  return { model, version: v, path: `/repo/${model}/${v}/model.onnx`, kind: 'onnx', config: { max_batch_size: 8 }, ...extra };
}

const IMPLEMENTATIONS: { name: string; open: () => ControlStore }[] = [
  { name: 'MemoryControlStore', open: () => new MemoryControlStore() },
  { name: 'SQLite store', open: () => openSqliteStore(freshPath(), { flushIntervalMs: 60_000 }) },
];

for (const impl of IMPLEMENTATIONS) {
  describe(`ControlStore contract: ${impl.name}`, () => {
    const use = (fn: (s: ControlStore) => void) => () => {
      const s = impl.open();
      try {
        fn(s);
      } finally {
        s.close();
      }
    };

    it('puts, replaces, lists (by name) and deletes apps', use((s) => {
      assert.deepEqual(s.listApps(), []);
      s.putApp(app('zeta'));
      s.putApp(app('alpha'));
      s.putApp(app('Beta'));
      assert.deepEqual(s.listApps().map((a) => a.name), ['Beta', 'alpha', 'zeta']);
      s.putApp(app('alpha', { models: ['c'], policy_params: { eta: 0.9 } }));
      assert.deepEqual(s.listApps().find((a) => a.name === 'alpha'), app('alpha', { models: ['c'], policy_params: { eta: 0.9 } }));
      s.deleteApp('zeta');
      s.deleteApp('never-existed');
      assert.deepEqual(s.listApps().map((a) => a.name), ['Beta', 'alpha']);
    }));

    it('keeps JSON fidelity: nested params, unicode, escapes, extreme numbers; drops what JSON drops', use((s) => {
      const def = app('应用-🚀-"q\'\\', {
        policy_params: { eta: 1e-300, big: 1.7976931348623157e308, neg: -0.1, nested: { a: [1, [2, { b: 'ü\u0000\n\t"' }]], e: {} } },
        default_output: 'défaut ✓ \u{1F600}',
        flags: [true, false, null],
      });
      s.putApp(def);
      s.putApp({ ...app('lossy'), skipped: undefined, nan: Number.NaN, inf: Number.POSITIVE_INFINITY });
      s.putApp(JSON.parse('{"name":"proto","__proto__":{"x":1}}') as StoredApp);
      const got = Object.fromEntries(s.listApps().map((a) => [a.name, a]));
      assert.deepEqual(got[def.name], def);
      assert.deepEqual(got.lossy, { ...app('lossy'), nan: null, inf: null });
      assert.ok(!('skipped' in got.lossy!));
      assert.deepEqual(Object.getOwnPropertyDescriptor(got.proto, '__proto__')?.value, { x: 1 });
    }));

    it('returns copies: changing an input after put or an output after list changes nothing', use((s) => {
      const def = app('a', { policy_params: { eta: 0.5, nested: { k: [1] } } });
      s.putApp(def);
      (def.policy_params as { nested: { k: number[] } }).nested.k.push(2);
      const listed = s.listApps()[0]!;
      (listed.models as string[]).push('x');
      assert.deepEqual(s.listApps()[0], app('a', { policy_params: { eta: 0.5, nested: { k: [1] } } }));
      const v = version('m', 1, { config: { tags: ['t'] } });
      s.putModelVersion(v);
      (v.config.tags as string[]).push('u');
      assert.deepEqual(s.listModelVersions()[0]!.config, { tags: ['t'] });
    }));

    it('puts, replaces, lists (model, then numeric version) and deletes model versions', use((s) => {
      s.putModelVersion(version('resnet', 10));
      s.putModelVersion(version('resnet', 2, { kind: 'js', path: '/up/resnet-2.mjs' }));
      s.putModelVersion(version('modèle', 1, { config: { nested: { ok: ['é'] }, max_batch_size: 4 } }));
      s.putModelVersion(version('alpha', 3));
      assert.deepEqual(s.listModelVersions().map((v) => `${v.model}:${v.version}`), ['alpha:3', 'modèle:1', 'resnet:2', 'resnet:10']);
      assert.deepEqual(s.listModelVersions()[1], version('modèle', 1, { config: { nested: { ok: ['é'] }, max_batch_size: 4 } }));
      assert.deepEqual(s.listModelVersions()[2], version('resnet', 2, { kind: 'js', path: '/up/resnet-2.mjs' }));
      s.putModelVersion(version('resnet', 2, { path: '/elsewhere' }));
      assert.equal(s.listModelVersions()[2]!.path, '/elsewhere');
      assert.equal(s.listModelVersions()[2]!.kind, 'onnx');
      s.deleteModelVersion('resnet', 10);
      s.deleteModelVersion('resnet', 99);
      assert.deepEqual(s.listModelVersions().map((v) => `${v.model}:${v.version}`), ['alpha:3', 'modèle:1', 'resnet:2']);
    }));

    it('pins and clears current versions; replicas are independent of the pin', use((s) => {
      assert.deepEqual(s.currentVersions(), {});
      s.setCurrentVersion('b', 2);
      s.setCurrentVersion('a', 1);
      s.setCurrentVersion('a', 3);
      assert.deepEqual(s.currentVersions(), { a: 3, b: 2 });
      s.setReplicas('a', 4);
      s.setCurrentVersion('a', null);
      assert.deepEqual(s.currentVersions(), { b: 2 });
      assert.deepEqual(s.replicas(), { a: 4 });
      s.setCurrentVersion('never-pinned', null);
      assert.deepEqual(s.currentVersions(), { b: 2 });
      s.setReplicas('a', 1);
      s.setReplicas('c', 3);
      assert.deepEqual(s.replicas(), { a: 1, c: 3 });
      assert.deepEqual(s.currentVersions(), { b: 2 });
    }));

    it('keeps selection states per (app, context); deleteApp drops the app and all its states', use((s) => {
      assert.equal(s.get('a', ''), undefined);
      assert.deepEqual(s.entries('a'), []);
      s.putApp(app('a'));
      s.putApp(app('b'));
      const st = { params: { eta: 0.1 }, arms: ['x', 'y'], logWeights: [0.25, -1.5] };
      s.set('a', '', st);
      s.set('a', 'user-ü', { n: 1 });
      s.set('b', 'user-ü', { n: 2 });
      s.flush();
      s.set('a', 'user-ü', { n: 3 });
      assert.deepEqual(s.get('a', ''), st);
      assert.deepEqual(new Map(s.entries('a')), new Map<string, unknown>([['', st], ['user-ü', { n: 3 }]]));
      s.deleteApp('a');
      assert.deepEqual(s.entries('a'), []);
      assert.equal(s.get('a', ''), undefined);
      assert.deepEqual(s.listApps().map((x) => x.name), ['b']);
      assert.deepEqual(s.get('b', 'user-ü'), { n: 2 });
      s.flush();
      assert.deepEqual(s.entries('a'), []);
    }));

    it('refuses bad arguments before writing anything', use((s) => {
      assert.throws(() => s.putModelVersion(version('m', 0)), RangeError);
      assert.throws(() => s.putModelVersion(version('m', 1.5)), RangeError);
      assert.throws(() => s.putModelVersion(version('m', Number.NaN)), RangeError);
      assert.throws(() => s.putModelVersion({ ...version('m', 1), kind: 'tf' as 'js' }), TypeError);
      assert.throws(() => s.putModelVersion(version('', 1)), TypeError);
      assert.throws(() => s.deleteModelVersion('m', -1), RangeError);
      assert.throws(() => s.setCurrentVersion('m', 0), RangeError);
      assert.throws(() => s.setReplicas('m', 0), RangeError);
      assert.throws(() => s.setReplicas('m', 2.5), RangeError);
      assert.throws(() => s.putApp({ name: '' }), TypeError);
      assert.throws(() => s.putApp({ name: 7 } as unknown as StoredApp), TypeError);
      assert.throws(() => s.set('a', 'c', undefined), TypeError);
      assert.throws(() => s.putApp({ name: 'big', n: 1n }), TypeError);
      assert.deepEqual(s.listModelVersions(), []);
      assert.deepEqual(s.currentVersions(), {});
      assert.deepEqual(s.replicas(), {});
      assert.deepEqual(s.listApps(), []);
      assert.deepEqual(s.entries('a'), []);
    }));

    it('throws STORE_CLOSED after close; close is idempotent', () => {
      const s = impl.open();
      s.close();
      s.close();
      assert.throws(() => s.listApps(), isClosed);
      assert.throws(() => s.putApp(app('a')), isClosed);
      assert.throws(() => s.set('a', '', 1), isClosed);
      assert.throws(() => s.get('a', ''), isClosed);
      assert.throws(() => s.flush(), isClosed);
    });
  });
}

describe('both implementations agree', () => {
  it('end in the same state after 600 random operations (seeded stream)', () => {
    const mem = new MemoryControlStore();
    const path = freshPath();
    const sql = openSqliteStore(path, { flushIntervalMs: 60_000 });
    const ops = opStream(0x5eed);
    for (let i = 0; i < 600; i++) {
      const op = ops.next().value;
      applyOp(mem, op, i % 7 === 0);
      applyOp(sql, op, i % 7 === 0);
      if (i % 100 === 99) assert.deepEqual(snapshot(sql), snapshot(mem), `after op ${i}`);
    }
    const want = snapshot(mem);
    assert.ok(want.apps.length > 0 && want.versions.length > 0 && Object.keys(want.replicas).length > 0);
    sql.close();
    const reopened = openSqliteStore(path);
    assert.deepEqual(snapshot(reopened), want, 'reopened database (states flushed by close)');
    reopened.close();
  });
});

describe('repository removals and container versions', () => {
  for (const [name, make] of [['memory', () => new MemoryControlStore()], ['SQLite', () => openSqliteStore(freshPath())]] as const) {
    it(`${name}: removals are set, listed in order, cleared; container versions keep their meta`, () => {
      const s: ControlStore = make();
      s.setRemoved('zeta', 0, 'unloaded');
      s.setRemoved('alpha', 2, 'deleted');
      s.setRemoved('alpha', 1, 'deleted');
      s.setRemoved('alpha', 1, 'unloaded');
      assert.deepEqual(s.removed(), [
        { model: 'alpha', version: 1, state: 'unloaded' }, { model: 'alpha', version: 2, state: 'deleted' }, { model: 'zeta', version: 0, state: 'unloaded' },
      ]);
      s.setRemoved('alpha', 2, null);
      assert.deepEqual(s.removed().map((r) => `${r.model}:${r.version}`), ['alpha:1', 'zeta:0']);
      assert.throws(() => s.setRemoved('alpha', -1, 'deleted'), RangeError);
      assert.throws(() => s.setRemoved('alpha', 1, 'gone' as never), TypeError);
      const v: StoredModelVersion = { model: 'ext', version: 3, path: '', kind: 'container', config: {}, meta: { input_type: 'doubles', labels: ['a'], container_name: 'img:1' } };
      s.putModelVersion(v);
      assert.deepEqual(s.listModelVersions(), [v]);
      s.close();
    });
  }
});

describe('SQLite store: durability', () => {
  it('uses WAL and commits every control-plane call before it returns', () => {
    const path = freshPath();
    const s = openSqliteStore(path, { flushIntervalMs: 60_000 });
    try {
      s.putApp(app('a'));
      s.putModelVersion(version('m', 2));
      s.setCurrentVersion('m', 2);
      s.setReplicas('m', 3);
      peek(path, (db) => {
        assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal((db.prepare('SELECT count(*) FROM apps').pluck().get() as number), 1);
        assert.deepEqual(db.prepare('SELECT model, current_version, replicas FROM model_settings').all(), [{ model: 'm', current_version: 2, replicas: 3 }]);
        assert.equal((db.prepare('SELECT count(*) FROM model_versions').pluck().get() as number), 1);
      });
      s.deleteApp('a');
      s.setCurrentVersion('m', null);
      peek(path, (db) => {
        assert.equal((db.prepare('SELECT count(*) FROM apps').pluck().get() as number), 0);
        assert.deepEqual(db.prepare('SELECT model, current_version, replicas FROM model_settings').all(), [{ model: 'm', current_version: null, replicas: 3 }]);
      });
    } finally {
      s.close();
    }
  });

  it('drops a model_settings row once neither a pin nor replicas remain', () => {
    const path = freshPath();
    const s = openSqliteStore(path);
    s.setCurrentVersion('m', 4);
    s.setCurrentVersion('m', null);
    s.close();
    assert.equal(peek(path, (db) => db.prepare('SELECT count(*) FROM model_settings').pluck().get()), 0);
  });

  it('selection states reach the file only on flush(); a second connection sees them after it', () => {
    const path = freshPath();
    const s = openSqliteStore(path, { flushIntervalMs: 60_000 });
    try {
      s.putApp(app('a'));
      s.set('a', 'u1', { w: [1, 2] });
      s.set('a', '', { w: [3] });
      const other = openSqliteStore(path, { flushIntervalMs: 60_000 });
      assert.deepEqual(other.listApps().map((x) => x.name), ['a']);
      assert.deepEqual(other.entries('a'), []);
      other.close();
      const t0 = Date.now();
      s.flush();
      const again = openSqliteStore(path, { flushIntervalMs: 60_000 });
      assert.deepEqual(again.get('a', 'u1'), { w: [1, 2] });
      assert.deepEqual(again.get('a', ''), { w: [3] });
      again.close();
      const stamps = peek(path, (db) => db.prepare('SELECT updated_at FROM selection_state').pluck().all() as number[]);
      assert.equal(stamps.length, 2);
      for (const t of stamps) assert.ok(t >= t0 && t <= Date.now());
      s.set('a', 'u1', { w: [9] });
      assert.deepEqual(peek(path, (db) => JSON.parse(db.prepare("SELECT state FROM selection_state WHERE context = 'u1'").pluck().get() as string)), { w: [1, 2] });
    } finally {
      s.close();
    }
    assert.deepEqual(peek(path, (db) => JSON.parse(db.prepare("SELECT state FROM selection_state WHERE context = 'u1'").pluck().get() as string)), { w: [9] }, 'close() flushes');
  });

  it('deleteApp removes flushed states from the file at once', () => {
    const path = freshPath();
    const s = openSqliteStore(path, { flushIntervalMs: 60_000 });
    s.set('a', 'u', 1);
    s.set('b', 'u', 2);
    s.flush();
    s.deleteApp('a');
    assert.deepEqual(peek(path, (db) => db.prepare('SELECT app FROM selection_state').pluck().all()), ['b']);
    s.close();
  });

  it('the timer flushes within about twice the interval', async () => {
    const interval = 100;
    const path = freshPath();
    const s = openSqliteStore(path, { flushIntervalMs: interval });
    try {
      await sleep(interval / 2);
      s.set('a', 'u', { v: 1 });
      const stored = () => peek(path, (db) => db.prepare('SELECT count(*) FROM selection_state').pluck().get() as number) === 1;
      assert.equal(stored(), false);
      const waited = await until(stored, 10 * interval);
      assert.ok(waited <= 2 * interval, `flushed after ${waited.toFixed(0)} ms, interval ${interval} ms`);
    } finally {
      s.close();
    }
  });

  it('a failing timer flush is reported, keeps the states dirty, and the next flush retries', async () => {
    const path = freshPath();
    const errors: unknown[] = [];
    const s = openSqliteStore(path, { flushIntervalMs: 20, onFlushError: (e) => errors.push(e) });
    try {
      s.set('a', 'good', { ok: true });
      s.set('a', 'bad', { n: 1n });
      await until(() => errors.length > 0, 2000);
      assert.ok(errors[0] instanceof TypeError);
      assert.equal(peek(path, (db) => db.prepare('SELECT count(*) FROM selection_state').pluck().get()), 0, 'nothing of a failed flush is written');
      s.set('a', 'bad', { n: 1 });
      await until(() => peek(path, (db) => db.prepare('SELECT count(*) FROM selection_state').pluck().get() === 2), 2000);
    } finally {
      s.close();
    }
  });

  it('the flush timer does not keep a process alive (and exit without close() loses unflushed states)', () => {
    const path = freshPath();
    const url = new URL('../../src/store/sqlite-store.js', import.meta.url).href;
    const script = `import { openSqliteStore } from ${JSON.stringify(url)};
      const s = openSqliteStore(${JSON.stringify(path)}, { flushIntervalMs: 60000 });
      s.putApp({ name: 'kept' });
      s.set('kept', 'u', 1);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, encoding: 'utf8' });
    assert.equal(r.error, undefined);
    assert.equal(r.status, 0, r.stderr);
    const s = openSqliteStore(path);
    assert.deepEqual(s.listApps(), [{ name: 'kept' }]);
    assert.equal(s.get('kept', 'u'), undefined);
    s.close();
  });
});

describe('SQLite store: migrations', () => {
  const tables = (path: string) =>
    peek(path, (db) => db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all() as string[]);

  it('a fresh database gets the latest schema version and every table', () => {
    const path = freshPath();
    openSqliteStore(path).close();
    assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
    assert.equal(peek(path, schemaVersion), SCHEMA_VERSION);
    assert.deepEqual(tables(path), ['apps', 'model_settings', 'model_versions', 'repository_removals', 'selection_state']);
  });

  it('reopening is idempotent and keeps the data', () => {
    const path = freshPath();
    const s = openSqliteStore(path);
    s.putApp(app('a'));
    s.close();
    for (let i = 0; i < 2; i++) openSqliteStore(path).close();
    const db = new Database(path);
    assert.deepEqual(migrate(db), { from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    db.close();
    const again = openSqliteStore(path);
    assert.deepEqual(again.listApps(), [app('a')]);
    again.close();
  });

  it('refuses a database written by a newer schema, and leaves it untouched', () => {
    const path = freshPath();
    openSqliteStore(path).close();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => openSqliteStore(path), (e: unknown) => e instanceof StoreError && e.code === 'SCHEMA_TOO_NEW');
    assert.equal(peek(path, schemaVersion), SCHEMA_VERSION + 1);
  });

  it('applies only the pending migrations, and a failing step rolls the whole run back', () => {
    const path = freshPath();
    const s = openSqliteStore(path);
    s.putApp(app('a'));
    s.close();
    const N = SCHEMA_VERSION;
    const next: Migration = { version: N + 1, description: 'app notes', up: (db) => db.exec("ALTER TABLE apps ADD COLUMN note TEXT NOT NULL DEFAULT ''") };
    const failing: Migration = { version: N + 2, description: 'fails half way', up: (db) => { db.exec('CREATE TABLE half (x INTEGER) STRICT'); throw new Error('boom'); } };
    const db = new Database(path);
    try {
      assert.throws(() => migrate(db, [...MIGRATIONS, next, failing]), /boom/);
      assert.equal(schemaVersion(db), N);
      assert.deepEqual(db.prepare("SELECT name FROM pragma_table_info('apps')").pluck().all(), ['name', 'definition']);
      assert.deepEqual(migrate(db, [...MIGRATIONS, next]), { from: N, to: N + 1 });
      assert.deepEqual(db.prepare('SELECT name, note FROM apps').all(), [{ name: 'a', note: '' }]);
      assert.deepEqual(migrate(db, [...MIGRATIONS, next]), { from: N + 1, to: N + 1 });
    } finally {
      db.close();
    }
    assert.ok(!tables(path).includes('half'));
  });

  it('rejects a migration list that is not 1, 2, 3, ... in order', () => {
    const db = new Database(':memory:');
    const noop = (version: number): Migration => ({ version, description: 'noop', up: () => {} });
    assert.throws(() => migrate(db, [noop(1), noop(3)]));
    assert.throws(() => migrate(db, [noop(2)]));
    assert.equal(schemaVersion(db), 0);
    db.close();
  });

  it('passes SQLite errors through for a file that is not a database', () => {
    const dir = join(root, `junk${seq++}`);
    mkdirSync(dir);
    const path = join(dir, 'state.db');
    writeFileSync(path, Buffer.alloc(4096, 7));
    assert.throws(() => openSqliteStore(path), (e: unknown) => (e as { code?: string }).code === 'SQLITE_NOTADB');
  });
});

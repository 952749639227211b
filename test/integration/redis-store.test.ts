/**
 * The Redis ControlStore against a real redis-server: the same contract as the embedded stores
 * (a seeded stream of 600 writes ends where the in-memory store ends, and a fresh instance reads
 * it all back), atomic updates from two instances, per-user bounds kept in Redis, and the
 * behaviour while Redis is away.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { MemoryControlStore } from '../../src/store/memory-store.js';
import { openRedisStore, type RedisControlStore } from '../../src/store/redis-store.js';
import { SkiffError } from '../../src/errors.js';
import { applyOp, opStream, snapshot, APP_NAMES } from '../unit/fixtures/store-ops.js';
import { startRedis, type RedisServer } from './cluster.js';
import { tempDir } from './helpers.js';

const T = { timeout: 60_000 };
const update = (s: RedisControlStore, app: string, ctx: string, change: (cur: unknown) => unknown): Promise<void> =>
  new Promise((resolve, reject) => s.update(app, ctx, change, (err) => (err ? reject(err) : resolve())));

describe('the Redis ControlStore', () => {
  const dir = tempDir('skiff-redis-store-');
  let redis: RedisServer;
  let db = 0;
  const opened: RedisControlStore[] = [];
  /** A store on a fresh database (or on `on`, the database of an earlier one). */
  const open = async (opts: { db?: number; maxUserStates?: number } = {}): Promise<RedisControlStore> => {
    const s = await openRedisStore(`redis://127.0.0.1:${redis.port}/${opts.db ?? ++db}`, { maxUserStates: opts.maxUserStates });
    opened.push(s);
    return s;
  };
  before(async () => {
    redis = await startRedis(dir.dir, { aof: true });
  });
  after(async () => {
    for (const s of opened) s.close();
    await redis.stop();
    dir.cleanup();
  });

  it('ends where the in-memory store ends after 600 seeded writes; a fresh instance reads it all back', T, async () => {
    const mem = new MemoryControlStore();
    const s = await open();
    const ops = opStream(0x5eed);
    for (let i = 0; i < 600; i++) {
      const op = ops.next().value;
      applyOp(mem, op, false);
      if (op.kind === 'state') await update(s, op.app, op.context, () => op.state);
      else applyOp(s, op, false);
    }
    await s.sync();
    const want = snapshot(mem);
    assert.ok(want.apps.length > 0 && want.versions.length > 0 && Object.keys(want.replicas).length > 0);
    const got = snapshot(s);
    assert.deepEqual({ ...got, states: undefined }, { ...want, states: undefined });
    const fresh = await open({ db });
    const back = snapshot(fresh);
    assert.deepEqual({ ...back, states: undefined }, { ...want, states: undefined });
    // States: application-wide ones are read at open; a user's on first use (in the background).
    for (const app of APP_NAMES) {
      for (const [ctx, state] of want.states[app]!) {
        if (ctx !== '') {
          fresh.get(app, ctx);
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.deepEqual(fresh.get(app, ctx), state, `${app}/${ctx}`);
      }
    }
  });

  it('updates from two instances at once lose nothing (compare-and-set in a script)', T, async () => {
    const a = await open();
    a.putApp({ name: 'app' });
    await a.sync();
    const b = await open({ db });
    const inc = (cur: unknown): unknown => ({ n: ((cur as { n?: number } | undefined)?.n ?? 0) + 1 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => update(i % 2 ? a : b, 'app', i % 4 < 2 ? '' : 'user', inc)));
    const c = await open({ db });
    assert.deepEqual(c.get('app', ''), { n: 100 });
    await update(c, 'app', 'user', inc);
    assert.deepEqual(c.get('app', 'user'), { n: 101 });
    // The other instances' copies follow through the published updates.
    for (const s of [a, b]) {
      for (let t = 0; t < 100 && (s.get('app', '') as { n: number }).n !== 100; t++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(s.get('app', ''), { n: 100 });
    }
  });

  it('keeps at most maxUserStates per-user states per application in Redis (the oldest go)', T, async () => {
    const s = await open({ maxUserStates: 5 });
    for (let u = 0; u < 20; u++) await update(s, 'bounded', `u${u}`, () => ({ u }));
    await update(s, 'bounded', '', () => ({ wide: true }));
    const r = new Redis({ port: redis.port, db });
    try {
      const keys = await r.keys('skiff:s:*');
      assert.equal(keys.filter((k) => k.includes(':bounded:u')).length, 5, keys.join(' '));
      assert.ok(keys.some((k) => k.endsWith(':bounded:')), 'the application-wide state is never evicted');
      assert.deepEqual((await r.zrange('skiff:u:bounded', 0, -1)).sort(), ['u15', 'u16', 'u17', 'u18', 'u19']);
    } finally {
      r.disconnect();
    }
    s.deleteApp('bounded');
    await s.sync();
    const r2 = new Redis({ port: redis.port, db });
    try {
      assert.deepEqual(await r2.keys('skiff:*bounded*'), []);
    } finally {
      r2.disconnect();
    }
  });

  it('refuses writes with STORE_UNAVAILABLE while Redis is away, keeps reading, and catches up when it is back', T, async () => {
    const a = await open();
    const b = await open({ db });
    a.putApp({ name: 'kept' });
    await a.sync();
    await redis.proc().stop('SIGKILL');
    for (let t = 0; t < 200 && a.available; t++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(a.available, false);
    assert.throws(() => a.putApp({ name: 'lost' }), (e: unknown) => e instanceof SkiffError && e.code === 'STORE_UNAVAILABLE');
    await assert.rejects(update(a, 'kept', '', () => ({ n: 1 })), (e: unknown) => e instanceof SkiffError && e.code === 'STORE_UNAVAILABLE');
    assert.deepEqual(a.listApps().map((x) => x.name), ['kept']);
    await redis.restart();
    for (let t = 0; t < 500 && !(a.available && b.available); t++) await new Promise((r) => setTimeout(r, 10));
    a.putApp({ name: 'after' });
    await a.sync();
    for (let t = 0; t < 300 && b.listApps().length < 2; t++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(b.listApps().map((x) => x.name), ['after', 'kept']);
  });

  it('fails to open with a clear message when nothing listens', T, async () => {
    await assert.rejects(openRedisStore('redis://:secret@127.0.0.1:1/0', { connectTimeoutMs: 500 }), (e: Error) => /--state redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0: cannot reach Redis/.test(e.message) && !e.message.includes('secret'));
  });
});

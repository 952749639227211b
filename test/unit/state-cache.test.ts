/**
 * Per-user selection states: bounded in memory (LRU), read from the SQLite file only when needed,
 * changed ones written lazily — including those pushed out of memory before a flush.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { MemoryControlStore } from '../../src/store/memory-store.js';
import { StateCache } from '../../src/store/state-cache.js';
import { tempDir } from '../integration/helpers.js';

const state = (n: number) => ({ params: {}, arms: ['a'], w: [n] });

describe('selection state cache', () => {
  it('keeps at most maxUserStates per-user states (least recently used out), every app-wide state', () => {
    const c = new StateCache({ maxUserStates: 3 });
    c.set('app', '', state(0));
    for (let u = 1; u <= 5; u++) c.set('app', `u${u}`, state(u));
    c.get('app', 'u3'); // used again: not the next to go
    c.set('app', 'u6', state(6));
    assert.equal(c.userStates, 3);
    assert.deepEqual(c.entries('app').map(([k]) => k).sort(), ['', 'u3', 'u5', 'u6']);
    assert.equal(c.get('app', 'u1'), undefined);
  });

  it('the memory store forgets what falls out of its bound', () => {
    const s = new MemoryControlStore(2);
    for (let u = 1; u <= 4; u++) s.set('app', `u${u}`, state(u));
    assert.deepEqual(s.entries('app').map(([k]) => k).sort(), ['u3', 'u4']);
  });

  it('SQLite: user states are read on demand, and one pushed out of memory before a flush is not lost', () => {
    const tmp = tempDir();
    const path = join(tmp.dir, 'state.db');
    try {
      const a = openSqliteStore(path, { maxUserStates: 1000 });
      a.set('app', '', state(-1));
      for (let u = 0; u < 500; u++) a.set('app', `user-${u}`, state(u));
      a.close();

      const b = openSqliteStore(path, { maxUserStates: 10 });
      assert.deepEqual(b.get('app', ''), state(-1));
      assert.deepEqual(b.get('app', 'user-321'), state(321), 'read from the file when asked');
      // More changes than memory holds, before any flush: the overflow waits in pending writes.
      for (let u = 0; u < 50; u++) b.set('app', `user-${u}`, state(1000 + u));
      assert.deepEqual(b.get('app', 'user-0'), state(1000), 'a pushed-out change is still what is read');
      assert.equal(b.entries('app').length, 501, 'entries covers the file');
      b.close();

      const c = openSqliteStore(path, { maxUserStates: 10 });
      for (let u = 0; u < 50; u++) assert.deepEqual(c.get('app', `user-${u}`), state(1000 + u));
      assert.deepEqual(c.get('app', 'user-499'), state(499));
      c.close();
    } finally {
      tmp.cleanup();
    }
  });
});

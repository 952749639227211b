import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { defaultModelConfig, parseModelConfig } from '../../src/config/model-config.js';
import { SkiffError } from '../../src/errors.js';

const SCHEMA = JSON.parse(readFileSync(new URL('../../../schemas/model-config.schema.json', import.meta.url), 'utf8')) as {
  properties: Record<string, { default: unknown }>;
};

/** Config errors are the one place where the message is part of the contract: model and field. */
function rejects(model: string, raw: unknown, field: string): void {
  assert.throws(
    () => parseModelConfig(model, raw),
    (e: unknown) => {
      assert.ok(e instanceof SkiffError, `expected a SkiffError, got ${String(e)}`);
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.ok(e.message.includes(model), `message names the model: ${e.message}`);
      assert.ok(e.message.includes(field), `message names '${field}': ${e.message}`);
      return true;
    },
    `${JSON.stringify(raw)} must be rejected`,
  );
}

describe('model config: defaults', () => {
  it('an empty config gets every schema default and is frozen', () => {
    const cfg = parseModelConfig('mnist', {});
    assert.ok(Object.isFrozen(cfg));
    for (const [k, p] of Object.entries(SCHEMA.properties)) {
      assert.deepEqual((cfg as unknown as Record<string, unknown>)[k], p.default, k);
    }
    assert.deepEqual(cfg.version_policy, { latest: 1 });
    assert.equal(cfg.max_batch_size, 64);
    assert.equal(cfg.ring_bytes, 4194304);
    assert.throws(() => {
      (cfg as unknown as { max_batch_size: number }).max_batch_size = 1;
    }, TypeError);
  });

  it('defaultModelConfig equals parsing {}', () => {
    assert.deepEqual(defaultModelConfig('m'), parseModelConfig('m', {}));
  });

  it('given fields are kept and the rest defaulted', () => {
    const cfg = parseModelConfig('m', { max_batch_size: 8, batch_wait_timeout_us: 500, replicas: 2, version_policy: { all: true } });
    assert.equal(cfg.max_batch_size, 8);
    assert.equal(cfg.batch_wait_timeout_us, 500);
    assert.equal(cfg.replicas, 2);
    assert.deepEqual(cfg.version_policy, { all: true });
    assert.equal(cfg.threads, 1);
    assert.equal(cfg.cache_bytes, 16777216);
  });

  it('accepts every version_policy form and boundary values', () => {
    assert.deepEqual(parseModelConfig('m', { version_policy: { latest: 3 } }).version_policy, { latest: 3 });
    assert.deepEqual(parseModelConfig('m', { version_policy: { specific: [1, 4] } }).version_policy, { specific: [1, 4] });
    const edge = parseModelConfig('m', {
      max_batch_size: 1, batch_wait_timeout_us: 0, cache_bytes: 0, ring_bytes: 65536, latency_objective_us: 100,
      max_queue_rows: 1, default_timeout_us: 1000,
    });
    assert.equal(edge.cache_bytes, 0);
    assert.equal(edge.ring_bytes, 65536);
    assert.equal(parseModelConfig('m', { ring_bytes: 1073741824 }).ring_bytes, 1073741824);
  });

  it('does not modify the caller\'s object', () => {
    const raw = { max_batch_size: 4 };
    parseModelConfig('m', raw);
    assert.deepEqual(raw, { max_batch_size: 4 });
  });
});

describe('model config: errors name the model and the field', () => {
  const cases: [string, unknown, string][] = [
    ['max_batch_size as a string', { max_batch_size: '8' }, 'max_batch_size'],
    ['max_batch_size fractional', { max_batch_size: 1.5 }, 'max_batch_size'],
    ['max_batch_size 0', { max_batch_size: 0 }, 'max_batch_size'],
    ['max_batch_size too large', { max_batch_size: 65537 }, 'max_batch_size'],
    ['batch_wait_timeout_us negative', { batch_wait_timeout_us: -1 }, 'batch_wait_timeout_us'],
    ['batch_wait_timeout_us too large', { batch_wait_timeout_us: 1_000_001 }, 'batch_wait_timeout_us'],
    ['latency_objective_us too small', { latency_objective_us: 99 }, 'latency_objective_us'],
    ['replicas 0', { replicas: 0 }, 'replicas'],
    ['replicas too many', { replicas: 65 }, 'replicas'],
    ['threads as boolean', { threads: true }, 'threads'],
    ['cache_bytes negative', { cache_bytes: -5 }, 'cache_bytes'],
    ['max_queue_rows 0', { max_queue_rows: 0 }, 'max_queue_rows'],
    ['default_timeout_us too small', { default_timeout_us: 999 }, 'default_timeout_us'],
    ['default_timeout_us null', { default_timeout_us: null }, 'default_timeout_us'],
    ['ring_bytes below the minimum', { ring_bytes: 1024 }, 'ring_bytes'],
    ['ring_bytes above the maximum', { ring_bytes: 2 ** 31 }, 'ring_bytes'],
    ['ring_bytes not a power of two', { ring_bytes: 3 * 65536 }, 'ring_bytes'],
    ['ring_bytes not a power of two (odd)', { ring_bytes: 65537 }, 'ring_bytes'],
    ['an unknown field', { max_batch: 8 }, 'max_batch'],
    ['version_policy latest 0', { version_policy: { latest: 0 } }, 'version_policy'],
    ['version_policy all false', { version_policy: { all: false } }, 'version_policy'],
    ['version_policy with an unknown form', { version_policy: { newest: 2 } }, 'version_policy'],
    ['version_policy with two forms', { version_policy: { latest: 1, all: true } }, 'version_policy'],
    ['version_policy specific empty', { version_policy: { specific: [] } }, 'version_policy'],
    ['version_policy as a string', { version_policy: 'latest' }, 'version_policy'],
  ];
  for (const [what, raw, field] of cases) {
    it(what, () => rejects('resnet-50', raw, field));
  }

  it('each of several bad fields is named', () => {
    for (const field of ['replicas', 'threads', 'bogus']) rejects('mnist', { replicas: 0, threads: 'x', bogus: 1 }, field);
  });

  it('a config that is not an object is CONFIG_INVALID naming the model', () => {
    for (const raw of [null, [], 'x', 42]) {
      assert.throws(
        () => parseModelConfig('iris', raw),
        (e: unknown) => e instanceof SkiffError && e.code === 'CONFIG_INVALID' && e.message.includes('iris'),
      );
    }
  });
});

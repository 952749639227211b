import { toErrorInfo } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { own } from '../tensor/slab.js';
import type { Done } from './batch.js';
import { makeCacheKey, PredictionCache, type CacheKey, type Waiter } from './cache.js';

/**
 * The prediction cache in front of a model version's queue (a decorator of its run path): a hit
 * answers at once; a query identical to one in flight joins it; otherwise the query runs as the
 * leader and its answer fills the entry for everyone waiting. Cancelling leaves the shared
 * query; the leader's run is cancelled only when nobody waits for it any more. Main thread only.
 */
export interface QueryHandle {
  cancel(): void;
}

export const NOOP_HANDLE: QueryHandle = { cancel() {} };

const CANCELLED = { code: 'CANCELLED', message: 'cancelled by the client' } as const;

/** A cache of output tensors under a byte budget (entries own their bytes). */
export function newOutputCache(bytes: number): PredictionCache<Tensor[]> {
  return new PredictionCache<Tensor[]>(bytes, tensorsBytes, ownTensors);
}

/**
 * Answer `finish` through the cache: `run` is called only when this query leads. `keyPrefix`
 * names the model version and the input shapes; `onHit` counts a cache hit.
 */
export function inferCached(
  cache: PredictionCache<Tensor[]>,
  keyPrefix: string,
  inputs: readonly Tensor[],
  finish: Done,
  onHit: () => void,
  run: (done: Done) => QueryHandle,
): QueryHandle {
  const key = makeCacheKey(keyPrefix, inputs.map((t) => t.data));
  const hit = cache.get(key);
  if (hit) {
    onHit();
    finish(null, hit);
    return NOOP_HANDLE;
  }
  const waiter: Waiter<Tensor[]> = (err, v) => (err ? finish(toErrorInfo(err)) : finish(null, v));
  if (cache.joinOrLead(key, waiter)) return { cancel: () => leave(cache, key, waiter, finish) };
  const handle = run((err, out) => (err ? cache.fail(key, err) : cache.complete(key, out!)));
  return { cancel: () => leave(cache, key, waiter, finish, handle) };
}

function leave(cache: PredictionCache<Tensor[]>, key: CacheKey, waiter: Waiter<Tensor[]>, finish: Done, leader?: QueryHandle): void {
  const remaining = cache.leave(key, waiter);
  finish({ ...CANCELLED });
  // Cancel the underlying query only when nobody else still waits for it.
  if (remaining === 0) leader?.cancel();
}

/** Tensors whose bytes own their buffers (slab views copied out), for keeping in the cache. */
function ownTensors(ts: Tensor[]): Tensor[] {
  return ts.map((t) => (own(t.data) === t.data ? t : { ...t, data: own(t.data) }));
}

function tensorsBytes(ts: Tensor[]): number {
  let b = 0;
  for (const t of ts) b += t.data.byteLength + 64;
  return b;
}

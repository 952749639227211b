/**
 * The thread hand-off floor: the round trip of an empty piscina task, one at a time, with the
 * pool options Skiff's model pools use (one thread, min = max, synchronous atomics). Every
 * batch Skiff runs pays at least this on top of the model itself, since the uWS thread never
 * runs inference.
 */
import { Piscina } from 'piscina';
import { createHistogram, percentiles, recordUs, type Percentiles } from '../lib/histogram.js';

export async function measureThreadHop(tasks: number): Promise<Percentiles> {
  const pool = new Piscina({
    filename: new URL('./noop-task.js', import.meta.url).href,
    minThreads: 1,
    maxThreads: 1,
    idleTimeout: Number.MAX_SAFE_INTEGER,
    atomics: 'sync',
  });
  try {
    for (let i = 0; i < 200; i++) await pool.run(0);
    const h = createHistogram();
    for (let i = 0; i < tasks; i++) {
      const t0 = performance.now();
      await pool.run(i);
      recordUs(h, (performance.now() - t0) * 1000);
    }
    return percentiles(h);
  } finally {
    await pool.destroy();
  }
}

/**
 * Helper process measuring the machine's own scheduling noise: an otherwise idle process whose
 * only work is a 1 ms timer (perf_hooks.monitorEventLoopDelay). Any lateness it records is time
 * the operating system (or the hypervisor) did not run a ready thread; every latency measured
 * in the same window includes noise of that size. Reported as lag beyond the 1 ms period.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { serveParent } from './child.js';

const RESOLUTION_MS = 1;
const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
h.enable();
const lagMs = (ns: number): number => Math.max(0, Math.round(ns / 1000) / 1000 - RESOLUTION_MS);

serveParent({
  reset: () => {
    h.reset();
    return true;
  },
  read: () => ({ p50: lagMs(h.percentile(50)), p99: lagMs(h.percentile(99)), p999: lagMs(h.percentile(99.9)), max: lagMs(h.max), count: h.count }),
}, () => process.exit(0));
process.send!({ type: 'ready' });

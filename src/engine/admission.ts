import type { ErrorInfo } from '../errors.js';

/**
 * Admission control for one model version: estimate, on arrival, when a query would complete,
 * and refuse at once what cannot finish by its deadline instead of letting it wait and expire.
 *
 * The typical batch service time (from the moment a batch is at the head of its replica to its
 * answer being read: the model run plus the hand-offs) is the median of the last WINDOW
 * batches, recomputed per batch — a median, not a mean, so a few stragglers do not make
 * admission refuse what would have made it. No refusal before the model has a latency history.
 * Main thread only; no timers.
 */
const WINDOW = 32;
/** Batches observed before admission trusts its latency estimate. */
const WARMUP_BATCHES = 8;
/** Admit only when the estimated completion fits in this fraction of the time left. */
const HEADROOM = 0.8;

/** The queue and replicas as admission sees them at one instant. */
export interface Load {
  queuedRows: number;
  /** The AIMD cap (rows per batch). */
  capRows: number;
  /** Batches held by the replicas (running + pipelined). */
  running: number;
  /** Some replica holds nothing. */
  idle: boolean;
  replicas: number;
}

export class Admission {
  private estBatchMs = 0;
  private recent = new Float64Array(WINDOW);
  private seen = 0;

  constructor(
    private readonly id: string,
    /** Batch latency assumed before any batch has run (the latency objective). */
    private readonly fallbackMs: number,
  ) {}

  /** Record one batch's service time (ms). */
  observe(serviceMs: number): void {
    this.recent[this.seen % WINDOW] = serviceMs;
    this.seen++;
    const n = Math.min(this.seen, WINDOW);
    const sorted = this.recent.slice(0, n).sort();
    this.estBatchMs = sorted[n >> 1]!;
  }

  /** Take over a predecessor's history (pool resize). */
  adopt(old: Admission): void {
    this.estBatchMs = old.estBatchMs;
    this.recent = old.recent.slice();
    this.seen = old.seen;
  }

  get batchesSeen(): number {
    return this.seen;
  }

  /**
   * The one wait estimate (admission and Retry-After): time before a query of `rows` arriving now
   * gets a replica — the running batches when none is free, plus the full batches queued ahead of
   * it, spread over the replicas.
   */
  workAheadMs(rows: number, load: Load): number {
    const batchMs = this.seen > 0 ? this.estBatchMs : this.fallbackMs;
    const queuedAhead = Math.floor((load.queuedRows + rows - 1) / Math.max(1, load.capRows));
    if (load.idle && queuedAhead === 0) return 0;
    return ((load.running + queuedAhead) * batchMs) / Math.max(1, load.replicas);
  }

  /**
   * Null to admit; otherwise the refusal: OVERLOADED (with the time until the queue ahead has
   * drained) when the queue is the cause, DEADLINE_EXCEEDED when even an idle model could not
   * make it.
   */
  admit(rows: number, budgetMs: number, load: Load): ErrorInfo | null {
    if (this.seen < WARMUP_BATCHES) return null;
    const batchMs = this.estBatchMs;
    const waitMs = this.workAheadMs(rows, load);
    const completionMs = waitMs + batchMs;
    // Headroom for the estimate's error and the answer's way back to the client.
    if (completionMs <= budgetMs * HEADROOM) return null;
    if (waitMs === 0) {
      return { code: 'DEADLINE_EXCEEDED', message: `${this.id} needs ~${batchMs.toFixed(1)} ms per batch; the deadline leaves ${budgetMs.toFixed(1)} ms` };
    }
    return {
      code: 'OVERLOADED',
      message: `${this.id} cannot meet the deadline: ~${completionMs.toFixed(1)} ms of work queued ahead, ${budgetMs.toFixed(1)} ms left`,
      retryAfterMs: Math.max(1, Math.ceil(waitMs)),
    };
  }
}

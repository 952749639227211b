/**
 * The batch-forming rule, as a pure function of the queue's state and the time: "send now" or
 * "wait until t". Mechanism (timers, queues, workers) lives in the executor.
 *
 * Send when a replica is idle and either the queue holds a full batch (>= cap rows) or the
 * oldest queued query has waited the batch wait timeout. With a timeout of 0 every idle
 * replica takes whatever is queued at once (batches then grow only while replicas are busy).
 * A busy replica with room in its pipeline takes full batches only: queued behind the running
 * batch, a partial one would just be a smaller batch than waiting would give.
 */
export interface BatchState {
  now: number;
  /** Rows waiting in the queue (not counting expired or cancelled ones already removed). */
  queuedRows: number;
  /** Enqueue time of the oldest waiting query (ms); ignored when queuedRows is 0. */
  oldestEnqueuedAt: number;
  /** The current AIMD cap, in rows. */
  cap: number;
  /** Batch wait timeout in ms, counted from the oldest query's arrival. */
  waitMs: number;
  /** Replicas with nothing to run. */
  freeReplicas: number;
  /** Busy replicas that can queue one more batch behind the running one. */
  pipelineReplicas?: number;
}

export type BatchDecision =
  | { kind: 'dispatch' }
  | { kind: 'wait'; until: number }
  | { kind: 'idle' };

export function decideBatch(s: BatchState): BatchDecision {
  if (s.queuedRows <= 0) return { kind: 'idle' };
  if (s.queuedRows >= s.cap && s.freeReplicas + (s.pipelineReplicas ?? 0) > 0) return { kind: 'dispatch' };
  if (s.freeReplicas <= 0) return { kind: 'idle' };
  const until = s.oldestEnqueuedAt + s.waitMs;
  if (s.now >= until) return { kind: 'dispatch' };
  return { kind: 'wait', until };
}

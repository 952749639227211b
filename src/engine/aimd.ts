/**
 * The AIMD batch-size controller (Clipper's adaptive batching), as a pure function.
 *
 * After each batch: latency below (1 - band) x objective -> cap += additive (only when the cap
 * limited the batch: it filled the cap, or more was queued that did not fit — a half-empty
 * batch says nothing about a bigger one); within the band
 * -> hold; above the objective -> cap = max(1, floor(cap x multiplicative)). The cap never
 * exceeds maxBatch. State is a plain number so it can be stored, logged and replayed.
 */
export interface AimdConfig {
  objectiveMs: number;
  maxBatch: number;
  additive: number;
  multiplicative: number;
  band: number;
}

export const AIMD_DEFAULTS = { additive: 2, multiplicative: 0.9, band: 0.1 } as const;

export interface AimdObservation {
  /** Rows in the batch that was measured. */
  rows: number;
  /** The batch's latency in ms (the model's run time, as measured in the worker). */
  latencyMs: number;
  /**
   * More rows were queued than fitted under the cap (the next query would have overshot it):
   * the cap, not the queue, limited the batch even though `rows` < cap.
   */
  capLimited?: boolean;
}

export function aimdInitial(cfg: Pick<AimdConfig, 'maxBatch'>): number {
  return Math.min(1, cfg.maxBatch);
}

export function aimdNext(cap: number, obs: AimdObservation, cfg: AimdConfig): number {
  const { objectiveMs, maxBatch } = cfg;
  if (obs.latencyMs > objectiveMs) {
    return Math.max(1, Math.floor(cap * cfg.multiplicative));
  }
  if (obs.latencyMs < objectiveMs * (1 - cfg.band)) {
    if (obs.rows < cap && !obs.capLimited) return cap;
    return Math.min(maxBatch, cap + cfg.additive);
  }
  return cap;
}

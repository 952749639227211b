import type { Batch } from './batch.js';
import type { Replica } from './runner.js';

/**
 * The executor's view of its replicas: per replica, the batches it holds in the order it was
 * sent them (the head one is running), since when the head has run, and its watchdog. The
 * replica set may change (containers connect and disconnect); a lane lives as long as its
 * replica. Main thread only.
 */
export interface Lane {
  readonly replica: Replica;
  batches: Batch[];
  /** When the head batch started, as far as the main thread knows (dispatch or previous answer). */
  headSince: number;
  /** The replica had no room for another batch: wait for an answer before pipelining more. */
  full: boolean;
  watchdog: NodeJS.Timeout | null;
  /** The watchdog stopped this lane's replica: its head batch hung. */
  hung: boolean;
  /** Batches and rows sent to this replica so far, and the largest batch. */
  sent: { batches: number; rows: number; maxRows: number };
}

export class Lanes {
  private readonly list: Lane[] = [];
  private readonly byReplica = new Map<Replica, Lane>();

  constructor(private readonly depth: number) {}

  add(replica: Replica): Lane {
    const lane: Lane = { replica, batches: [], headSince: 0, full: false, watchdog: null, hung: false, sent: { batches: 0, rows: 0, maxRows: 0 } };
    this.list.push(lane);
    this.byReplica.set(replica, lane);
    return lane;
  }

  remove(lane: Lane): void {
    if (lane.watchdog) clearTimeout(lane.watchdog);
    lane.watchdog = null;
    this.byReplica.delete(lane.replica);
    const i = this.list.indexOf(lane);
    if (i >= 0) this.list.splice(i, 1);
  }

  of(replica: Replica): Lane | undefined {
    return this.byReplica.get(replica);
  }

  get size(): number {
    return this.list.length;
  }

  all(): readonly Lane[] {
    return this.list;
  }

  /** The replica for the next batch: an idle one, else the least loaded one that can pipeline. */
  pick(): Lane | null {
    let best: Lane | null = null;
    for (const l of this.list) {
      if (l.batches.length === 0) return l;
      if (l.full || l.batches.length >= this.depth) continue;
      if (!best || l.batches.length < best.batches.length) best = l;
    }
    return best;
  }

  /** Idle replicas, and busy ones with room for a batch behind the running one. */
  capacity(): { idle: number; pipelinable: number } {
    let idle = 0;
    let pipelinable = 0;
    for (const l of this.list) {
      if (l.batches.length === 0) idle++;
      else if (l.batches.length < this.depth && !l.full) pipelinable++;
    }
    return { idle, pipelinable };
  }

  /** Batches written to the replicas and not yet answered. */
  inflight(): number {
    let n = 0;
    for (const l of this.list) n += l.batches.length;
    return n;
  }

  /** Stop every watchdog (closing). */
  stopWatchdogs(): void {
    for (const l of this.list) {
      if (l.watchdog) clearTimeout(l.watchdog);
      l.watchdog = null;
    }
  }
}

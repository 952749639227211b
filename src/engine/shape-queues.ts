import { takeBatch, type Query } from './batch.js';
import { decideBatch } from './batch-former.js';
import { DeadlineQueue, earlier as less } from './deadline-queue.js';

/**
 * A model version's queued queries, one deadline queue per signature (the non-batch dims of the
 * inputs): only queries of one signature stack into a batch, so each signature forms its own
 * batches, under its own AIMD cap (a row of one shape may cost many times a row of another),
 * and a query of another shape never holds them up or cuts them short. Which signature goes
 * next is the batch-forming rule (batch-former.ts) applied to each, the most urgent head first.
 * With a single signature (the usual case) this is one deadline queue. Main thread only.
 */
export class ShapeQueue {
  readonly queue = new DeadlineQueue<Query>();
  rows = 0;
  constructor(
    readonly sig: string,
    /** Elements in one row of the inputs (all inputs together). */
    readonly rowElems: number,
    /** This signature's AIMD batch cap (rows); the executor moves it after each of its batches. */
    public cap: number,
  ) {}

  /** Enqueue time of the oldest waiting query (a scan: only asked while the queue holds less than a batch). */
  oldestEnqueuedAt(): number {
    let t = Infinity;
    for (const q of this.queue.items()) if (q.enqueuedAt < t) t = q.enqueuedAt;
    return t;
  }
}

/** Empty signature queues kept for reuse before they are dropped. */
const KEEP_EMPTY = 8;
/** Caps of dropped signatures remembered (oldest forgotten first), so one that comes back resumes where it was. */
const KEEP_CAPS = 1024;

export class ShapeQueues {
  /** `firstCap(rowElems)`: the cap a signature starts with. */
  constructor(private readonly firstCap: (rowElems: number) => number) {}

  private readonly list: ShapeQueue[] = [];
  private readonly bySig = new Map<string, ShapeQueue>();
  /** The caps dropped signature queues had learned, in the order they were dropped. */
  private readonly learned = new Map<string, number>();
  /** Rows queued over all signatures. */
  rows = 0;
  /** Set by next(): when the earliest signature that must wait for its batch is due (Infinity: none). */
  dueAt = Infinity;

  /** Signatures with a queue (some may be empty). */
  get shapes(): number {
    return this.list.length;
  }

  /**
   * Take over what `old` (a predecessor for the same model version) has learned: each of its
   * signatures, queued or dropped, starts here at its cap (at most `maxBatch`).
   */
  adoptCaps(old: ShapeQueues, maxBatch: number): void {
    for (const [sig, cap] of old.learned) this.remember(sig, Math.min(cap, maxBatch));
    for (const s of old.list) this.remember(s.sig, Math.min(s.cap, maxBatch));
  }

  /** Each signature's cap and queued rows. */
  caps(): { sig: string; cap: number; queuedRows: number }[] {
    return this.list.map((s) => ({ sig: s.sig, cap: s.cap, queuedRows: s.rows }));
  }

  push(q: Query): void {
    let s = this.bySig.get(q.sig);
    if (!s) {
      this.prune();
      const elems = rowElems(q);
      s = new ShapeQueue(q.sig, elems, this.learned.get(q.sig) ?? this.firstCap(elems));
      this.learned.delete(q.sig);
      this.bySig.set(q.sig, s);
      this.list.push(s);
    }
    s.queue.push(q);
    s.rows += q.rows;
    this.rows += q.rows;
  }

  /** Remove a queued query wherever it is; false when it was not queued. */
  remove(q: Query): boolean {
    const s = this.bySig.get(q.sig);
    if (!s || !s.queue.remove(q)) return false;
    s.rows -= q.rows;
    this.rows -= q.rows;
    return true;
  }

  /** The queue whose head has the earliest deadline (expiry, shutdown). */
  private urgent(): ShapeQueue | null {
    let best: ShapeQueue | null = null;
    for (const s of this.list) {
      const h = s.queue.peek();
      if (h && (!best || less(h, best.queue.peek()!))) best = s;
    }
    return best;
  }

  /** The most urgent query of all. */
  peek(): Query | undefined {
    return this.urgent()?.queue.peek();
  }

  /** Take the most urgent query of all. */
  pop(): Query | undefined {
    const s = this.urgent();
    const q = s?.queue.pop();
    if (q) {
      s!.rows -= q.rows;
      this.rows -= q.rows;
    }
    return q;
  }

  /** Take one batch from `s` under its cap (and `maxBytes` of input). */
  take(s: ShapeQueue, maxBytes: number): ReturnType<typeof takeBatch> {
    const b = takeBatch(s.queue, s.cap, maxBytes);
    s.rows -= b.rows;
    this.rows -= b.rows;
    return b;
  }

  /**
   * Which signature forms the next batch, given the batch wait and the replicas that are idle or
   * can pipeline one more: of those the batch-forming rule would send now (each under its own
   * cap), the one with the most urgent head; null when none (`dueAt` then holds when the first
   * waiting one is due).
   */
  next(now: number, waitMs: number, idle: number, pipelinable: number): ShapeQueue | null {
    let shape: ShapeQueue | null = null;
    let until = Infinity;
    this.dueAt = until;
    // The rule sends a partial batch only to an idle replica: with none, only full ones can go
    // (a queue of many shapes under load is passed over without asking the rule of each).
    if (idle + pipelinable === 0) return null;
    for (const s of this.list) {
      if (s.rows <= 0 || (idle === 0 && s.rows < s.cap)) continue;
      const oldest = s.rows < s.cap ? s.oldestEnqueuedAt() : now;
      const d = decideBatch({ now, queuedRows: s.rows, oldestEnqueuedAt: oldest, cap: s.cap, waitMs, freeReplicas: idle, pipelineReplicas: pipelinable });
      if (d.kind === 'dispatch') {
        if (!shape || less(s.queue.peek()!, shape.queue.peek()!)) shape = s;
      } else if (d.kind === 'wait' && d.until < until) until = d.until;
    }
    this.dueAt = until;
    return shape;
  }

  /**
   * Drop empty signature queues beyond a few (a client sending many shapes must not grow this for
   * ever); their caps are remembered, up to KEEP_CAPS of them.
   */
  private prune(): void {
    let empty = 0;
    for (const s of this.list) if (s.queue.size === 0) empty++;
    if (empty < KEEP_EMPTY) return;
    for (let i = this.list.length - 1; i >= 0; i--) {
      const s = this.list[i]!;
      if (s.queue.size !== 0) continue;
      this.bySig.delete(s.sig);
      this.list.splice(i, 1);
      this.remember(s.sig, s.cap);
    }
  }

  /** Remember the cap of a signature without a queue here (the oldest of KEEP_CAPS is forgotten). */
  private remember(sig: string, cap: number): void {
    this.learned.delete(sig);
    this.learned.set(sig, cap);
    if (this.learned.size > KEEP_CAPS) this.learned.delete(this.learned.keys().next().value!);
  }
}

/** Elements in one row of a query's inputs (a row of each input; a whole input when it has no rows). */
function rowElems(q: Query): number {
  let n = 0;
  for (const t of q.inputs) {
    let e = 1;
    for (let d = 1; d < t.shape.length; d++) e *= t.shape[d]!;
    n += e;
  }
  return n;
}

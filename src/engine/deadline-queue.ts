/**
 * A deadline-ordered priority queue (binary min-heap) with O(log n) removal of any item, used
 * as each model's query queue. Ties on deadline keep arrival order. Owned by the main thread.
 */
export interface Queued {
  /** Absolute deadline on the monotonic clock (ms). */
  deadline: number;
  /** Arrival sequence number: breaks deadline ties FIFO. */
  seq: number;
  /** Managed by the queue: position in the heap, -1 when not queued. */
  heapIndex: number;
}

/** Queue order: earlier deadline first, arrival order on ties. */
export function earlier(a: Queued, b: Queued): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

export class DeadlineQueue<T extends Queued> {
  private readonly heap: T[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): T | undefined {
    return this.heap[0];
  }

  /** Items in heap order (not sorted): for scans that need every queued item. */
  items(): readonly T[] {
    return this.heap;
  }

  push(item: T): void {
    item.heapIndex = this.heap.length;
    this.heap.push(item);
    this.up(item.heapIndex);
  }

  pop(): T | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    this.removeAt(0);
    return top;
  }

  /** Remove an item wherever it is; returns false when it was not queued. */
  remove(item: T): boolean {
    const i = item.heapIndex;
    if (i < 0 || this.heap[i] !== item) return false;
    this.removeAt(i);
    return true;
  }

  private removeAt(i: number): void {
    const h = this.heap;
    const item = h[i]!;
    const last = h.pop()!;
    item.heapIndex = -1;
    if (i < h.length) {
      h[i] = last;
      last.heapIndex = i;
      this.down(i);
      this.up(last.heapIndex);
    }
  }

  private up(i: number): void {
    const h = this.heap;
    const item = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (!earlier(item, parent)) break;
      h[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    h[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const item = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && earlier(h[r]!, h[l]!) ? r : l;
      const child = h[c]!;
      if (!earlier(child, item)) break;
      h[i] = child;
      child.heapIndex = i;
      i = c;
    }
    h[i] = item;
    item.heapIndex = i;
  }
}

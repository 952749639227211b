/**
 * Injectable time. Everything that decides by time (batch forming, AIMD, deadlines) takes a
 * Clock so tests can drive it by hand. Milliseconds, monotonic, fractional.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}

/** Convert an absolute wall-clock deadline (µs since the epoch) to the monotonic clock's ms. */
export function wallDeadlineToMonotonic(deadlineUnixUs: number, clock: Clock = systemClock): number {
  return clock.now() + (deadlineUnixUs / 1000 - Date.now());
}

import type { ErrorInfo } from './errors.js';

/**
 * The global budget of request bytes in flight: HTTP bodies being read and the input tensors of
 * queries not yet answered, across every frontend. New work that would take it over the limit
 * is refused at once (SERVER_BUSY, 503) with a Retry-After computed from how fast the bytes in
 * flight have been draining — before memory grows, instead of after. Main thread only.
 */
const RATE_HALF_LIFE_MS = 1000;

export class ByteBudget {
  private used = 0;
  /** Bytes released per ms, an exponentially weighted average. */
  private rate = 0;
  private lastRelease = 0;

  constructor(readonly limit: number) {}

  get inFlight(): number {
    return this.used;
  }

  /** Take `n` bytes, or return the refusal (nothing taken). A single request larger than the whole budget still passes when nothing else is in flight. */
  acquire(n: number): ErrorInfo | null {
    if (this.used + n > this.limit && this.used > 0) {
      return {
        code: 'SERVER_BUSY',
        message: `the server holds ${Math.round(this.used / 1048576)} MiB of requests in flight (limit ${Math.round(this.limit / 1048576)} MiB); retry later`,
        retryAfterMs: this.retryAfterMs(n),
      };
    }
    this.used += n;
    return null;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
    const now = performance.now();
    const dt = Math.max(1e-3, now - this.lastRelease);
    const w = Math.pow(0.5, dt / RATE_HALF_LIFE_MS);
    this.rate = this.rate * w + (n / dt) * (1 - w);
    this.lastRelease = now;
  }

  /** How long until `n` more bytes would fit at the recent drain rate (10 ms .. 10 s). */
  retryAfterMs(n: number): number {
    const excess = this.used + n - this.limit;
    if (this.rate <= 0) return 1000;
    return Math.min(10_000, Math.max(10, Math.ceil(excess / this.rate)));
  }
}

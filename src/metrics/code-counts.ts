/**
 * Counts of error codes per key (e.g. "model:version"), written only on error paths so the
 * success path pays nothing. Main thread only.
 */
export class CodeCounts {
  private readonly byKey = new Map<string, Record<string, number>>();

  add(key: string, code: string): void {
    let m = this.byKey.get(key);
    if (!m) {
      m = {};
      this.byKey.set(key, m);
    }
    m[code] = (m[code] ?? 0) + 1;
  }

  /** The counts under `key` (empty when none); a live view, do not modify. */
  of(key: string): Readonly<Record<string, number>> {
    return this.byKey.get(key) ?? EMPTY;
  }
}

const EMPTY: Readonly<Record<string, number>> = Object.freeze({});

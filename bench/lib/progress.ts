/**
 * A one-line progress bar for load runs, drawn on stderr only when it is a terminal; with
 * output redirected it prints nothing (the summaries on stdout are the plain record).
 */
import type { Progress } from './loadgen.js';
import { fmtInt } from './format.js';

const WIDTH = 24;

export class ProgressBar {
  private readonly tty: boolean;
  private drawn = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.tty = stream.isTTY === true;
  }

  update(label: string, p: Progress): void {
    if (!this.tty) return;
    const frac = Math.max(0, Math.min(1, p.elapsedMs / p.totalMs));
    const fill = Math.round(frac * WIDTH);
    const phase = p.elapsedMs < p.warmupMs ? 'warm-up' : 'measuring';
    const line = `${label} [${'#'.repeat(fill)}${'.'.repeat(WIDTH - fill)}] ${(p.elapsedMs / 1000).toFixed(1)}/${(p.totalMs / 1000).toFixed(1)} s ${phase}  sent ${fmtInt(p.sent)}  answered ${fmtInt(p.answered)}  errors ${fmtInt(p.errors)}`;
    const cols = this.columns();
    this.stream.write(`\r${line.slice(0, cols - 1).padEnd(cols - 1)}`);
    this.drawn = true;
  }

  /** The terminal's width; some terminals (and pseudo-terminals) report 0 or nothing. */
  private columns(): number {
    const c = this.stream.columns;
    return typeof c === 'number' && c >= 20 ? c : 120;
  }

  /** Erase the bar (before printing a result line). */
  clear(): void {
    if (!this.tty || !this.drawn) return;
    this.stream.write(`\r${' '.repeat(this.columns() - 1)}\r`);
    this.drawn = false;
  }
}

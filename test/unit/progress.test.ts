import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar } from '../../bench/lib/progress.js';

/** A terminal that reports a width, or 0, or none (as some pseudo-terminals do). */
function terminal(columns: number | undefined): { stream: NodeJS.WriteStream; out: string[] } {
  const out: string[] = [];
  const stream = { isTTY: true, columns, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream;
  return { stream, out };
}

const P = { elapsedMs: 500, totalMs: 1000, warmupMs: 100, sent: 10, answered: 9, errors: 0 };

for (const columns of [0, undefined, 80]) {
  test(`the progress bar draws and clears on a terminal of width ${columns}`, () => {
    const t = terminal(columns);
    const bar = new ProgressBar(t.stream);
    bar.update('run', P);
    bar.clear();
    assert.equal(t.out.length, 2);
    const width = columns && columns >= 20 ? columns : 120;
    assert.equal(t.out[0]!.length, width, 'the line fills the width less one, after a carriage return');
    assert.match(t.out[0]!, /sent 10 {2}answered 9/);
  });
}

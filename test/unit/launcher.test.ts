/**
 * The container launcher with real child processes (a Node one-liner stands in for a container:
 * the launcher does not care what the process is): Clipper's environment, labelled output lines,
 * restart with backoff after kill -9, replicas up and down, and a stop that leaves nothing behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Launcher } from '../../src/engine/container/launcher.js';
import { parseContainerDescription } from '../../src/config/container-config.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

const SCRIPT = [
  "console.log('env ' + [process.env.CLIPPER_MODEL_NAME, process.env.CLIPPER_MODEL_VERSION, process.env.CLIPPER_PORT, process.env.CLIPPER_INPUT_TYPE, process.env.CLIPPER_MODEL_PATH, process.env.EXTRA].join(','));",
  "console.error('to stderr');",
  'setInterval(() => {}, 1000);',
].join('');

describe('container launcher', () => {
  it('starts replicas with Clipper\'s environment, labels their output, restarts a killed one, resizes and stops', { timeout: 60_000 }, async () => {
    const { log, lines } = capture();
    const description = parseContainerDescription('m', '/tmp', { command: [process.execPath, '-e', SCRIPT], input_type: 'floats', env: { EXTRA: 'x' } });
    let ports = 40000;
    const closed: number[] = [];
    const launcher = new Launcher({
      model: 'm', version: 3, description, modelPath: '/tmp/m/3', replicas: 2, rpcHost: '127.0.0.1', log,
      openEndpoint: async () => {
        const port = ports++;
        return { port, close: () => closed.push(port) };
      },
      minBackoffMs: 50, maxBackoffMs: 200, stopGraceMs: 500,
    });
    try {
      const pids = await until('2 processes', () => (launcher.pids().length === 2 ? launcher.pids() : undefined));
      const envLines = await until('both env lines', () => {
        const e = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('env '));
        return e.length === 2 ? e : undefined;
      });
      for (const l of envLines) {
        assert.equal(l.model, 'm');
        assert.equal(l.version, 3);
        assert.equal(l.stream, 'stdout');
        assert.match(String(l.msg), /^env m,3,4000[01],floats,\/tmp\/m\/3,x$/);
      }
      assert.deepEqual(envLines.map((l) => l.replica).sort(), [0, 1]);
      await until('stderr lines', () => (lines.filter((l) => l.stream === 'stderr' && l.msg === 'to stderr').length === 2 ? true : undefined));

      process.kill(pids[0]!, 'SIGKILL');
      const after = await until('a replacement', () => {
        const now = launcher.pids();
        return now.length === 2 && !now.includes(pids[0]!) ? now : undefined;
      });
      assert.ok(after.includes(pids[1]!));
      assert.equal(launcher.restarts, 1);

      launcher.setReplicas(3);
      await until('3 processes', () => (launcher.pids().length === 3 ? true : undefined));
      const three = launcher.pids();
      launcher.setReplicas(1);
      await until('1 process', () => (launcher.pids().length === 1 ? true : undefined));
      await until('the stopped ones gone', () => (three.filter(alive).length === 1 ? true : undefined));
      assert.equal(closed.length, 2, 'the endpoints of stopped replicas are closed');
    } finally {
      const last = launcher.pids();
      await launcher.stop();
      assert.deepEqual(launcher.pids(), []);
      for (const p of last) assert.equal(alive(p), false);
    }
  });
});

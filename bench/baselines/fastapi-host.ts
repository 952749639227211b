/**
 * Baseline (d), hosted for the runner: starts `fastapi_numpy.py serve` (FastAPI on uvicorn with
 * uvloop and httptools, two worker processes, numpy over the same ONNX weights) with Debian's
 * python3, waits until it answers, and reports ready over the bench's IPC channel like every
 * other child (lib/child.ts). The numpy BLAS gets `threads` threads per worker process, as a
 * Skiff worker gets ORT threads. Stopping this process stops the Python server.
 *
 * argv: <model.onnx> <model-name> <threads> [workers]
 */
import { spawn } from 'node:child_process';
import { serveParent } from '../lib/child.js';
import { FASTAPI_PACKAGES, FASTAPI_SCRIPT, PYTHON } from '../lib/python.js';

const [path, modelName, threadsArg, workersArg] = process.argv.slice(2);
if (!path || !modelName) throw new Error('usage: fastapi-host <model.onnx> <model-name> [threads] [workers]');
const threads = String(Number(threadsArg ?? 1));
const workers = String(Number(workersArg ?? 2));

const py = spawn(PYTHON, [FASTAPI_SCRIPT, 'serve', path, modelName, workers], {
  env: { ...process.env, OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads, MKL_NUM_THREADS: threads, PYTHONUNBUFFERED: '1' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let stderr = '';
py.stderr!.on('data', (c: Buffer) => {
  stderr = (stderr + c.toString('utf8')).slice(-4000);
});

function fail(message: string): never {
  process.send!({ type: 'failed', message: `FastAPI baseline: ${message} (needs Debian's ${FASTAPI_PACKAGES})` });
  py.kill('SIGKILL');
  process.exit(1);
}

py.once('exit', (code, signal) => fail(`python exited (code ${code}, signal ${signal}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`));

const port = await new Promise<number>((resolve) => {
  let out = '';
  py.stdout!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    const nl = out.indexOf('\n');
    if (nl >= 0) resolve(Number((JSON.parse(out.slice(0, nl)) as { port: number }).port));
  });
});

/** Wait until every worker process has imported the app: 2 x workers answers in a row. */
async function waitReady(): Promise<void> {
  const until = Date.now() + 60_000;
  let ok = 0;
  while (Date.now() < until) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/health/ready`);
      ok = r.ok ? ok + 1 : 0;
      if (ok >= 2 * Number(workers)) return;
    } catch {
      ok = 0;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fail('not answering after 60 s');
}
await waitReady();

serveParent({}, () => {
  py.removeAllListeners('exit');
  py.once('exit', () => process.exit(0));
  py.kill('SIGTERM');
  setTimeout(() => {
    py.kill('SIGKILL');
    process.exit(0);
  }, 3000).unref();
});
process.send!({ type: 'ready', port, pid: py.pid });

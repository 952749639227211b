import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface Proc {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  adminUrl: string;
  exited: Promise<number | null>;
  /** What the process wrote on stderr so far (its JSON log lines). */
  stderr(): string;
}

/** Run `skiff serve` as a real process on ephemeral ports; resolves once it printed "ready". */
export async function spawnServer(args: string[]): Promise<Proc> {
  // A trusted loopback: these tests drive the admin API without a token (the security tests check the default).
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--admin-port', '0', '--log-level', 'warn', '--no-admin-token', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\nready')) resolve();
    });
    void exited.then((code) => reject(new Error(`server exited (${code}) before ready:\n${out}\n${err}`)));
  });
  const port = /demo page +https?:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1];
  const adminPort = /admin API +https?:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1];
  return { child, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`, adminUrl: `http://127.0.0.1:${adminPort}`, exited, stderr: () => err };
}

/** Resident set size of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

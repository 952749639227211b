import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type ServerOptions, type SkiffServer } from '../../src/server.js';
import { silentLogger } from '../../src/log.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { WebSocket } from 'ws';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import type { WireResponse } from '../../src/protocol/wire-types.js';
import type { ErrorInfo } from '../../src/errors.js';
import * as ort from 'onnxruntime-node';
import { Prng } from '../../src/modelgen/prng.js';

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'skiff-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real server on an ephemeral loopback port. */
export async function serve(repo: string, extra: Partial<ServerOptions> = {}): Promise<SkiffServer & { url: string; wsUrl: string; adminUrl: string }> {
  // Tests speak to the admin API without a token unless they give one (the security tests check the default).
  const s = await startServer({ modelRepository: repo, port: 0, host: '127.0.0.1', adminPort: 0, logger: silentLogger, adminToken: false, ...extra });
  return Object.assign(s, { url: `http://127.0.0.1:${s.port}`, wsUrl: `ws://127.0.0.1:${s.port}/ws`, adminUrl: `http://127.0.0.1:${s.adminPort}` });
}

export function f32(t: Tensor): Float32Array {
  return new Float32Array(t.data.slice().buffer);
}

export function i64(t: Tensor): BigInt64Array {
  return new BigInt64Array(t.data.slice().buffer);
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const r = await fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json, headers: r.headers };
}

export async function getJson(url: string): Promise<{ status: number; json: any }> {
  const r = await fetch(url);
  return { status: r.status, json: await r.json() };
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i]! - expected[i]!) <= tol)) throw new Error(`${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

/**
 * Send raw frame bytes on a fresh WebSocket and collect the decoded responses (and frame-level
 * errors) until `count` of them arrived.
 */
export async function rawExchange(wsUrl: string, frames: Uint8Array[], count: number): Promise<{ responses: WireResponse[]; frameErrors: ErrorInfo[] }> {
  const ws = new WebSocket(wsUrl, { maxPayload: 64 * 1024 * 1024 });
  ws.binaryType = 'nodebuffer';
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const responses: WireResponse[] = [];
  const frameErrors: ErrorInfo[] = [];
  const done = new Promise<void>((resolve, reject) => {
    ws.on('message', (d: Buffer) => {
      const f = decodeFrame(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      responses.push(...f.responses);
      if (f.error) frameErrors.push(f.error);
      if (responses.length + frameErrors.length >= count) resolve();
    });
    ws.once('close', () => reject(new Error('closed before all answers arrived')));
  });
  for (const f of frames) ws.send(f);
  await done;
  ws.close();
  return { responses, frameErrors };
}

/**
 * `rows` random inputs of width `dim` (uniform in [-range, range], seeded) and a classifier's
 * outputs for them from in-process ONNX Runtime: the reference a served answer must match.
 */
export async function classifierReference(file: string, rows: number, opts: { seed: number; range: number; dim?: number }): Promise<{ x: Float32Array; probs: Float32Array; labels: BigInt64Array }> {
  const dim = opts.dim ?? 64;
  const x = new Float32Array(rows * dim);
  const rng = new Prng(opts.seed);
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform(-opts.range, opts.range);
  const s = await ort.InferenceSession.create(file);
  try {
    const out = await s.run({ input: new ort.Tensor('float32', x, [rows, dim]) });
    return { x, probs: out.probabilities!.data as Float32Array, labels: out.label!.data as BigInt64Array };
  } finally {
    await s.release();
  }
}

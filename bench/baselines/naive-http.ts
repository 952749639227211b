/**
 * Baseline (b): the inference server a Node user writes by hand. node:http, an OIP-shaped JSON
 * body parsed with JSON.parse, one `session.run` per request on the event-loop thread, the
 * answer built with JSON.stringify. Same ONNX Runtime session options (and thread count) as a
 * Skiff worker. Runs as a child process (lib/child.ts).
 *
 * argv: <model.onnx> <model-name> <ort-threads>
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import * as ort from 'onnxruntime-node';
import { serveParent } from '../lib/child.js';

const [path, modelName, threadsArg] = process.argv.slice(2);
if (!path || !modelName) throw new Error('usage: naive-http <model.onnx> <model-name> [ort-threads]');
const threads = Number(threadsArg ?? 1);

const options: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};
if (threads > 1) (options as Record<string, unknown>).extra = { session: { intra_op: { allow_spinning: '0' } } };
const session = await ort.InferenceSession.create(path, options);
const route = `/v2/models/${modelName}/infer`;

interface JsonTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: number[];
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function infer(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string; inputs: JsonTensor[] };
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of body.inputs) feeds[t.name] = new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
  const results = await session.run(feeds);
  const outputs = Object.entries(results).map(([name, t]) => ({
    name,
    datatype: t.type === 'int64' ? 'INT64' : 'FP32',
    shape: t.dims,
    data: Array.from(t.data as ArrayLike<number | bigint>, Number),
  }));
  reply(res, 200, { model_name: modelName, model_version: '1', id: body.id, outputs });
}

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== route) return reply(res, 404, { error: 'not found' });
  infer(req, res).catch((err: unknown) => reply(res, 400, { error: err instanceof Error ? err.message : String(err) }));
});
server.keepAliveTimeout = 120_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  serveParent({ memory: () => process.memoryUsage() }, () => {
    server.close();
    process.exit(0);
  });
  process.send!({ type: 'ready', port: typeof addr === 'object' && addr ? addr.port : 0 });
});

import { SkiffClient } from './client/ws-client.js';
import { loadMnist } from './modelgen/mnist-data.js';
import { startServer, type SkiffServer } from './server.js';
import { newHistogram } from './metrics/latency.js';
import { silentLogger } from './log.js';
import { DEMO_APPS, DEMO_REPOSITORY } from './paths.js';

/**
 * `skiff demo`: stream held-out MNIST digits over the WebSocket protocol to every demo model
 * and print each model's accuracy, throughput and latency percentiles.
 */
export interface DemoOptions {
  url?: string;
  count: number;
  window: number;
}

export interface DemoResult {
  model: string;
  accuracy: number;
  throughput: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  errors: number;
}

export async function streamDigits(client: SkiffClient, model: string, count: number, window: number): Promise<DemoResult> {
  const { test } = loadMnist();
  const hist = newHistogram();
  let correct = 0;
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const x = test.x.subarray(i * 784, (i + 1) * 784);
      const t0 = performance.now();
      const r = await client.infer({
        model,
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784], data: new Uint8Array(x.buffer, x.byteOffset, x.byteLength) }],
        outputs: ['label'],
      });
      hist.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      if (r.error) {
        errors++;
        continue;
      }
      const label = r.outputs[0]!;
      const predicted = Number(new DataView(label.data.buffer, label.data.byteOffset, 8).getBigInt64(0, true));
      if (predicted === test.y[i]) correct++;
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    model, accuracy: correct / count, throughput: count / seconds,
    p50Us: hist.getValueAtPercentile(50), p99Us: hist.getValueAtPercentile(99), p999Us: hist.getValueAtPercentile(99.9), errors,
  };
}

/** Stream digits through an app with feedback for every query; report weights over time and accuracy. */
export async function selectionDemo(client: SkiffClient, app: string, events: number, weightsOf: () => Promise<Record<string, number>>, every: number): Promise<{ accuracy: number; timeline: { event: number; weights: Record<string, number> }[] }> {
  const { test } = loadMnist();
  let correct = 0;
  const timeline: { event: number; weights: Record<string, number> }[] = [{ event: 0, weights: await weightsOf() }];
  for (let k = 0; k < events; k++) {
    const i = k;
    const x = test.x.subarray(i * 784, (i + 1) * 784);
    const inputs = [{ name: 'input', datatype: 'FP32' as const, shape: [784], data: new Uint8Array(x.buffer, x.byteOffset, x.byteLength) }];
    const r = await client.infer({ app, inputs });
    const out = r.outputs.find((t) => t.name === 'output');
    if (!r.error && out && new DataView(out.data.buffer, out.data.byteOffset, 8).getFloat64(0, true) === test.y[i]) correct++;
    await client.feedback({ app, inputs, label: test.y[i]! });
    if ((k + 1) % every === 0) timeline.push({ event: k + 1, weights: await weightsOf() });
  }
  return { accuracy: correct / events, timeline };
}

/** The running server's digit models and applications, from its read-only /site/info. */
async function siteInfo(base: string): Promise<{ models: string[]; apps: { name: string; policy: string }[] }> {
  const r = await fetch(`${base}/site/info`);
  if (!r.ok) throw new Error(`${base}/site/info answered ${r.status}: is this a Skiff server?`);
  const info = await r.json() as { models: { name: string; ready: boolean; inputs: { datatype: string; shape: number[] }[] }[]; apps: { name: string; policy: string; models: string[] }[] };
  const digit = info.models.filter((m) => m.ready && m.inputs.length === 1 && m.inputs[0]!.datatype === 'FP32' && [784, -1].includes(m.inputs[0]!.shape.at(-1)!));
  const names = digit.map((m) => m.name);
  return { models: names, apps: info.apps.filter((a) => a.models.some((m) => names.includes(m))) };
}

export async function runDemo(o: DemoOptions & { standalone?: boolean }): Promise<DemoResult[]> {
  let server: SkiffServer | undefined;
  let url = o.url ?? 'ws://127.0.0.1:8000/ws';
  if (o.standalone) {
    server = await startServer({ modelRepository: DEMO_REPOSITORY, appsFile: DEMO_APPS, optionalModels: ['sklearn_digits'], port: 0, adminPort: -1, logger: silentLogger });
    url = `ws://127.0.0.1:${server.port}/ws`;
  }
  const base = url.replace(/^ws/, 'http').replace(/\/ws\/?$/, '');
  let client: SkiffClient;
  let info: Awaited<ReturnType<typeof siteInfo>>;
  try {
    client = await SkiffClient.connect(url, { connectTimeoutMs: 3000 });
    info = await siteInfo(base);
  } catch (err) {
    await server?.close();
    throw new Error(`no Skiff server answers at ${url} (${(err as Error).message}): start one with \`npm start\` in another terminal, give its address with --url, or run \`skiff demo --standalone\``);
  }
  const heldOut = loadMnist().test.n;
  const count = Math.min(o.count, heldOut);
  const models = info.models;
  console.log(`streaming ${count} held-out MNIST digits (of ${heldOut}, none seen in training) to each of ${models.length} models over ${url}, ${o.window} in flight\n`);
  console.log('model            accuracy  queries/s   p50 µs   p99 µs  p99.9 µs  errors');
  const results: DemoResult[] = [];
  try {
    for (const m of models) {
      const r = await streamDigits(client, m, count, o.window);
      results.push(r);
      console.log(`${m.padEnd(16)} ${(r.accuracy * 100).toFixed(2).padStart(7)}%  ${r.throughput.toFixed(0).padStart(9)}  ${String(r.p50Us).padStart(7)}  ${String(r.p99Us).padStart(7)}  ${String(r.p999Us).padStart(8)}  ${String(r.errors).padStart(6)}`);
    }
    // Learning: read each application's weights from the server's read-only route.
    const weightsOf = (app: string) => async (): Promise<Record<string, number>> => {
      const r = await fetch(`${base}/site/apps/${encodeURIComponent(app)}/weights`);
      return ((await r.json()) as { weights: Record<string, number> }).weights;
    };
    for (const app of info.apps) {
      const arms = Object.keys(await weightsOf(app.name)());
      if (app.policy === 'exp4') {
        console.log(`\n${app.policy} (app '${app.name}'): every model per query, combined by learned weights, feedback on every query:`);
        const r = await selectionDemo(client, app.name, count, weightsOf(app.name), count);
        console.log(`  ensemble accuracy ${(r.accuracy * 100).toFixed(2)}% over ${count} digits; single models: ` +
          results.map((x) => `${x.model} ${(x.accuracy * 100).toFixed(2)}%`).join(', '));
        console.log(`  final weights: ${Object.entries(r.timeline.at(-1)!.weights).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}`);
      } else {
        console.log(`\n${app.policy} (app '${app.name}'): one model per query, learning from feedback on every query; weight per model:`);
        const r = await selectionDemo(client, app.name, count, weightsOf(app.name), Math.max(1, Math.floor(count / 8)));
        console.log('  event   ' + arms.map((m) => m.padStart(16)).join(''));
        for (const t of r.timeline) console.log(`  ${String(t.event).padStart(5)}   ` + arms.map((m) => (t.weights[m] ?? 0).toFixed(3).padStart(16)).join(''));
        console.log(`  accuracy of the answers while learning: ${(r.accuracy * 100).toFixed(2)}%`);
      }
    }
  } finally {
    await client.close();
    await server?.close();
  }
  return results;
}

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
      const i = next++ % test.n;
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
    const i = k % test.n;
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

export async function runDemo(o: DemoOptions): Promise<DemoResult[]> {
  let server: SkiffServer | undefined;
  let url = o.url;
  if (!url) {
    server = await startServer({ modelRepository: DEMO_REPOSITORY, appsFile: DEMO_APPS, port: 0, adminPort: -1, logger: silentLogger });
    url = `ws://127.0.0.1:${server.port}/ws`;
  }
  const client = await SkiffClient.connect(url);
  const models = ['mnist_logreg', 'mnist_mlp', 'mnist_weak'];
  console.log(`streaming ${o.count} held-out digits per model over ${url}, ${o.window} in flight\n`);
  console.log('model          accuracy  queries/s   p50 µs   p99 µs  p99.9 µs  errors');
  const results: DemoResult[] = [];
  try {
    for (const m of models) {
      const r = await streamDigits(client, m, o.count, o.window);
      results.push(r);
      console.log(`${m.padEnd(14)} ${(r.accuracy * 100).toFixed(2).padStart(7)}%  ${r.throughput.toFixed(0).padStart(9)}  ${String(r.p50Us).padStart(7)}  ${String(r.p99Us).padStart(7)}  ${String(r.p999Us).padStart(8)}  ${String(r.errors).padStart(6)}`);
    }
    if (server) {
      const weightsOf = (app: string) => async (): Promise<Record<string, number>> => {
        const rt = server!.apps.require(app);
        return rt.policy.weights(server!.apps.state(rt, '')) as Record<string, number>;
      };
      const events = Math.min(o.count, 2000);
      console.log(`\nExp3 (app 'digits'): one model per query, learning from feedback on every query; selection probability per model:`);
      const exp3 = await selectionDemo(client, 'digits', events, weightsOf('digits'), Math.max(1, Math.floor(events / 8)));
      console.log('  event   ' + models.map((m) => m.padStart(13)).join(''));
      for (const t of exp3.timeline) console.log(`  ${String(t.event).padStart(5)}   ` + models.map((m) => (t.weights[m] ?? 0).toFixed(3).padStart(13)).join(''));
      console.log(`  accuracy of the answers while learning: ${(exp3.accuracy * 100).toFixed(2)}%`);
      console.log(`\nExp4 (app 'digits_ensemble'): every model per query, combined by learned weights:`);
      const exp4 = await selectionDemo(client, 'digits_ensemble', events, weightsOf('digits_ensemble'), events);
      console.log(`  ensemble accuracy ${(exp4.accuracy * 100).toFixed(2)}% over ${events} digits; single models: ` +
        results.map((r) => `${r.model} ${(r.accuracy * 100).toFixed(2)}%`).join(', '));
      console.log(`  final weights: ${Object.entries(exp4.timeline.at(-1)!.weights).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}`);
    }
  } finally {
    client.close();
    await server?.close();
  }
  return results;
}

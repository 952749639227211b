import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DEMO_APPS, DEMO_REPOSITORY } from '../../src/paths.js';
import { serve, tempDir } from './helpers.js';

/**
 * The browser side, in Debian's chromium driven by playwright-core: the demo page at `/` (draw
 * strokes, predictions from every model and application, feedback, weights that move, accuracy,
 * latency histogram) and a round trip of the browser build of the client (/client/skiff.js):
 * model query, cancellation, deadline. The screenshot goes to a temporary path; docs/demo.png is
 * updated by hand from one.
 */
const CHROMIUM = '/usr/bin/chromium';

interface DemoState {
  connected: boolean;
  queries: number;
  answers: number;
  feedback: number;
  models: { name: string }[];
  apps: { name: string; policy: string }[];
  last: Record<string, { answer?: number; latencyMs: number; error?: string; chosen?: string[] }>;
  weights: Record<string, Record<string, number>>;
  accuracy: Record<string, { right: number; total: number }>;
  latencies: number[];
}

describe('in headless chromium', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)` }, () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let browser: Browser | undefined;
  const problems: string[] = [];

  const open = async (): Promise<Page> => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
    });
    return page;
  };

  before(async () => {
    // The demo's applications with a loose SLO, so a slow CI machine does not turn answers into defaults.
    const apps = JSON.parse(readFileSync(DEMO_APPS, 'utf8')) as { apps: { latency_slo_micros: number }[] };
    for (const a of apps.apps) a.latency_slo_micros = 2_000_000;
    writeFileSync(join(tmp.dir, 'apps.json'), JSON.stringify(apps));
    server = await serve(DEMO_REPOSITORY, { appsFile: join(tmp.dir, 'apps.json'), optionalModels: ['sklearn_digits'], adminPort: -1 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    tmp.cleanup();
  });

  /** Draws polyline strokes (pad coordinates 0..280) with the mouse. */
  const draw = async (page: Page, strokes: [number, number][][]): Promise<void> => {
    const box = (await page.locator('#pad').boundingBox())!;
    for (const stroke of strokes) {
      await page.mouse.move(box.x + stroke[0]![0], box.y + stroke[0]![1]);
      await page.mouse.down();
      for (const [x, y] of stroke.slice(1)) await page.mouse.move(box.x + x, box.y + y, { steps: 6 });
      await page.mouse.up();
    }
  };
  const settled = (page: Page) => page.waitForFunction(() => {
    const s = (globalThis as unknown as { skiffDemo: DemoState }).skiffDemo;
    return s.queries > 0 && s.answers === s.queries;
  }, undefined, { timeout: 15_000 });
  const demoState = (page: Page) => page.evaluate(() => (globalThis as unknown as { skiffDemo: DemoState }).skiffDemo);

  it('the demo page: draw, every model and application answers, feedback moves the weights', { timeout: 90_000 }, async () => {
    const page = await open();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 20_000 });
    let s = await demoState(page);
    assert.equal(s.connected, true);
    const models = s.models.map((m) => m.name).sort();
    for (const m of ['mnist_logreg', 'mnist_mlp', 'mnist_weak']) assert.ok(models.includes(m), `${m} is on the page`);
    assert.deepEqual(s.apps.map((a) => `${a.name}:${a.policy}`).sort(), ['digits:exp3', 'digits_ensemble:exp4']);
    const before = s.weights;
    for (const a of ['digits', 'digits_ensemble']) assert.equal(Object.keys(before[a]!).length, models.length, `${a} shows a weight per linked model`);

    // A "7": a bar and a diagonal, in two strokes.
    await draw(page, [[[70, 60], [210, 60]], [[210, 60], [130, 240]]]);
    await settled(page);
    s = await demoState(page);
    for (const m of ['mnist_logreg', 'mnist_mlp']) {
      assert.equal(s.last[m]?.error, undefined, `${m}: ${s.last[m]?.error}`);
      assert.equal(s.last[m]?.answer, 7, `${m} reads the drawn 7`);
    }
    for (const m of models) {
      const cells = await page.locator(`tr[data-model="${m}"] td`).allTextContents();
      assert.match(cells[1]!, /^\d$|^[A-Z_]+$/, `${m} shows an answer`);
      assert.match(cells[2]!, /ms$/, `${m} shows a latency`);
    }
    const exp3 = s.last.digits!;
    assert.equal(exp3.chosen?.length, 1, 'Exp3 picks one model');
    assert.ok(Number.isInteger(exp3.answer));
    assert.ok((s.last.digits_ensemble!.chosen ?? []).length >= 2, 'Exp4 combines models');
    assert.match(await page.textContent('div[data-app="digits"] .detail') ?? '', /answered by /);

    // Feedback: the drawing was a 1 (a mislabel for every model that said 7): the chosen
    // models lose weight, and the accuracy columns count it.
    await page.click('button[data-label="1"]');
    await page.waitForFunction(() => (globalThis as unknown as { skiffDemo: DemoState }).skiffDemo.feedback === 1);
    s = await demoState(page);
    const chosen = exp3.chosen![0]!.replace(/:\d+$/, '');
    assert.ok(s.weights.digits![chosen]! < before.digits![chosen]!, `Exp3's weight of ${chosen} fell: ${JSON.stringify(s.weights.digits)}`);
    assert.equal(s.accuracy.mnist_mlp?.total, 1);
    assert.match(await page.textContent('tr[data-model="mnist_mlp"] .acc') ?? '', /0% of 1/);
    const shownWeight = Number(await page.textContent(`div[data-app="digits"] .bar[data-model="${chosen}"] .w`));
    assert.ok(shownWeight < 1 / models.length, `the page shows the lower weight (${shownWeight})`);

    // Clear, draw a "0" (the weak model reads it as another digit), and say so: the ensemble
    // moves weight from the models that were wrong to those that were right; accuracy counts it.
    const ensembleBefore = s.weights.digits_ensemble!;
    await page.click('#clear');
    await draw(page, [[[140, 40], [80, 90], [80, 190], [140, 240], [200, 190], [200, 90], [140, 40]]]);
    await settled(page);
    s = await demoState(page);
    const right = models.filter((m) => s.last[m]?.answer === 0);
    const wrong = models.filter((m) => s.last[m]?.answer !== 0);
    assert.ok(right.length > 0 && wrong.length > 0, `the models disagree on this drawing: ${JSON.stringify(s.last)}`);
    await page.click('button[data-label="0"]');
    await page.waitForFunction(() => (globalThis as unknown as { skiffDemo: DemoState }).skiffDemo.feedback === 2);
    s = await demoState(page);
    const share = (w: Record<string, number>, m: string) => w[m]! / Object.values(w).reduce((a, b) => a + b, 0);
    for (const m of right) assert.ok(share(s.weights.digits_ensemble!, m) > share(ensembleBefore, m), `Exp4 gave ${m} (right) more weight`);
    for (const m of wrong) assert.ok(share(s.weights.digits_ensemble!, m) < share(ensembleBefore, m), `Exp4 gave ${m} (wrong) less weight`);
    assert.equal(s.accuracy.digits?.total, 2);
    assert.equal(s.accuracy.mnist_mlp?.right, 1);
    assert.ok(s.latencies.length >= 2 * (models.length + 2));
    assert.match(await page.textContent('#latency-summary') ?? '', /p50 .* ms · p99 .* ms/);

    const shot = join(tmp.dir, 'demo.png');
    await page.screenshot({ path: shot });
    assert.ok(statSync(shot).size > 10_000, 'a screenshot was written');
    await page.close();
    assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');
  });

  it('the browser build of the client: a round trip, cancellation and a deadline', { timeout: 60_000 }, async () => {
    const page = await open();
    await page.goto(`${server.url}/site/info`);
    const out = await page.evaluate(async () => {
      // A variable, so TypeScript leaves the browser's dynamic import alone.
      const path = '/client/skiff.js';
      const m = await import(path);
      const client = await m.SkiffClient.connect(`ws://${(globalThis as unknown as { location: { host: string } }).location.host}/ws`, { maxInFlight: 8 });
      const zeros = new Float32Array(784);
      const one = await client.infer({ model: 'mnist_mlp', inputs: [m.fp32('input', zeros, [1, 784])], outputs: ['label'], timeoutMs: 5000 });
      const ac = new AbortController();
      ac.abort();
      const cancelled = await client.infer({ model: 'mnist_mlp', inputs: [m.fp32('input', zeros, [1, 784])] }, { signal: ac.signal });
      const late = await client.infer({ model: 'mnist_mlp', inputs: [m.fp32('input', zeros, [1, 784])], timeoutMs: 0 });
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client.infer({ app: 'digits', inputs: [m.fp32('input', zeros.map(() => (i % 7) / 7), [784])] })));
      await client.close();
      return {
        label: one.error ? one.error.code : m.values(one.outputs[0]).length,
        labelType: one.outputs[0]?.datatype,
        cancelled: cancelled.error?.code,
        late: late.error?.code,
        many: many.filter((r: { error?: unknown }) => !r.error).length,
        state: client.state,
      };
    });
    assert.deepEqual(out, { label: 1, labelType: 'INT64', cancelled: 'CANCELLED', late: 'DEADLINE_EXCEEDED', many: 50, state: 'closed' });
    await page.close();
    assert.deepEqual(problems, []);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { WebSocket } from 'ws';
import { DEMO_APPS, DEMO_REPOSITORY } from '../../src/paths.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { loadMnist } from '../../src/modelgen/mnist-data.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { bytesOf, serve, tempDir } from './helpers.js';

/**
 * The live dashboard in a real browser (Debian's chromium, headless, through playwright-core)
 * while demo traffic runs: the page loads from the admin listener with the token, its charts
 * receive data and keep updating, nothing is logged to the console as an error. A screenshot is
 * saved to docs/dashboard.png.
 */
const CHROMIUM = '/usr/bin/chromium';

const TOKEN = 'dash-secret';
const CHARTS = ['c-qps', 'c-lat', 'c-split', 'c-cap', 'c-queue', 'c-cache', 'c-replicas', 'c-codes', 'c-refusals', 'c-lag', 'c-proc'];
const APPS = ['digits', 'digits_ensemble'];
const MODELS = ['mnist_logreg', 'mnist_mlp', 'mnist_weak'];

describe('live dashboard in headless chromium with demo traffic', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)` }, () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let client: SkiffClient;
  let browser: Browser | undefined;
  let stopTraffic = false;
  let traffic: Promise<void> = Promise.resolve();
  let sent = 0;

  /** Demo traffic until stopped: model queries (fresh and repeated digits), app queries with feedback. */
  const drive = async (): Promise<void> => {
    const { test } = loadMnist();
    const digit = (i: number, noise: number): Uint8Array => {
      const x = Float32Array.from(test.x.subarray((i % test.n) * 784, (i % test.n + 1) * 784));
      if (noise) x[i % 784] = noise;
      return bytesOf(x);
    };
    let k = 0;
    const modelLoop = async (): Promise<void> => {
      while (!stopTraffic) {
        const i = k++;
        // Every third query repeats one of 20 digits (cache hits); the rest are fresh.
        const data = i % 3 === 0 ? digit(i % 20, 0) : digit(i, 1 + (i % 997) / 1000);
        const input: Tensor = { name: 'input', datatype: 'FP32', shape: [1, 784], data };
        // One query in 25 with a 1 µs deadline: misses, counted by code and as deadline misses.
        await client.infer({ model: MODELS[i % 3]!, inputs: [input], ...(i % 25 === 7 ? { timeoutUs: 1 } : {}) });
        sent++;
      }
    };
    const appLoop = (app: string) => async (): Promise<void> => {
      while (!stopTraffic) {
        const i = k++;
        const inputs: Tensor[] = [{ name: 'input', datatype: 'FP32', shape: [784], data: digit(i, 0) }];
        await client.infer({ app, inputs });
        client.feedback({ app, inputs, label: test.y[i % test.n]! });
        sent++;
      }
    };
    await Promise.all([...Array.from({ length: 12 }, modelLoop), ...APPS.map((a) => appLoop(a)())]);
  };

  before(async () => {
    cpSync(DEMO_REPOSITORY, tmp.dir, { recursive: true });
    server = await serve(tmp.dir, { appsFile: DEMO_APPS, adminToken: TOKEN });
    client = await SkiffClient.connect(server.wsUrl);
    traffic = drive();
  });
  after(async () => {
    await browser?.close();
    stopTraffic = true;
    await traffic.catch(() => undefined);
    await client?.close();
    await server?.close();
    tmp.cleanup();
  });

  it('refuses the page, its assets and its WebSocket without the admin token', async () => {
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/uplot.js']) {
      const r = await fetch(`${server.adminUrl}${path}`);
      assert.equal(r.status, 401, path);
      assert.equal(((await r.json()) as { code: string }).code, 'UNAUTHORIZED');
    }
    const wrong = await fetch(`${server.adminUrl}/dashboard?token=nope`);
    assert.equal(wrong.status, 401);
    const wsStatus = (url: string): Promise<number> => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => {
        resolve(101);
        ws.close();
      });
      ws.once('error', reject);
    });
    const wsBase = server.adminUrl.replace(/^http/, 'ws');
    assert.equal(await wsStatus(`${wsBase}/dashboard/ws`), 401);
    assert.equal(await wsStatus(`${wsBase}/dashboard/ws?token=${TOKEN}`), 101);
    const ok = await fetch(`${server.adminUrl}/dashboard`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-type') ?? '', /text\/html/);
    const uplot = await fetch(`${server.adminUrl}/dashboard/uplot.js?token=${TOKEN}`);
    assert.equal(uplot.status, 200);
    assert.match(await uplot.text(), /uPlot/, 'uPlot is served locally');
  });

  it('loads in chromium, every chart receives live data, no console errors; saves a screenshot', async () => {
    const problems: string[] = [];
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.goto(`${server.adminUrl}/dashboard?token=${TOKEN}`);

    const ids = [...CHARTS, ...APPS.flatMap((a) => [`app-lat:${a}`, `app-w:${a}`])];
    // Page-side code runs in the browser: it reaches the page's probe through globalThis.
    type Probe = { frames: number; charts: Record<string, number>; connected: boolean };
    const probe = (): Promise<Probe> => page.evaluate(() => (globalThis as unknown as { __skiff: Probe }).__skiff);
    await page.waitForFunction(
      (want: string[]) => {
        const p = (globalThis as unknown as { __skiff?: Probe }).__skiff;
        return !!p && p.frames >= 6 && want.every((id) => (p.charts[id] ?? 0) >= 4);
      },
      ids,
      { timeout: 15_000, polling: 100 },
    );
    const first = await probe();
    assert.equal(first.connected, true);
    // Live: more points arrive while traffic runs.
    await page.waitForFunction((n: number) => (globalThis as unknown as { __skiff: Probe }).__skiff.frames >= n + 2, first.frames, { timeout: 5000, polling: 100 });
    const second = await probe();
    for (const id of ids) assert.ok(second.charts[id]! > first.charts[id]!, `chart ${id} keeps receiving data (${first.charts[id]} -> ${second.charts[id]})`);

    // The same counts are on the chart containers, and the page shows what the issue asks for.
    const points = await page.$$eval('.chart', (els) => els.map((e) => Number(e.getAttribute('data-points') ?? 0)));
    assert.equal(points.length, ids.length);
    assert.ok(points.every((n) => n > 0), `every chart has data: ${points}`);
    const legend = await page.$$eval('.app-card', (els) => els.map((e) => e.textContent ?? ''));
    assert.equal(legend.length, APPS.length);
    for (const text of legend) {
      assert.match(text, /SLO/);
      for (const m of MODELS) assert.ok(text.includes(m), `bandit weights list ${m}`);
    }
    const rows = await page.$$eval('#health tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td: { textContent: string | null }) => td.textContent)));
    // Every served model has a row (the demo's Python container too, where Python is installed).
    assert.deepEqual(rows.map((r) => r[0]).sort(), [...server.loadReport.loaded].sort());
    for (const m of MODELS) assert.ok(server.loadReport.loaded.includes(`${m}:1`), `${m} is served`);
    assert.ok(rows.every((r) => r[1] === 'ready' && r[3] === '1' && r[4] === '0'), 'ready, one replica, no restarts');
    // The batch-size distribution, the per-version table (p50/p95/p99, queue wait, compute,
    // replicas, batches in flight), process CPU and memory, and one distinct colour per model.
    const dist = await page.$$eval('#batch-dist .dist-row', (els) => els.map((e) => (e as unknown as { dataset: { model: string } }).dataset.model));
    for (const m of MODELS) assert.ok(dist.includes(`${m}:1`), `batch sizes of ${m}: ${dist}`);
    const now = await page.$$eval('#now tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td: { textContent: string | null }) => td.textContent ?? '')));
    for (const m of MODELS) {
      const row = now.find((r) => r[0] === `${m}:1`);
      assert.ok(row && row.slice(1, 7).every((v) => /^\d/.test(v)), `numbers for ${m}: ${JSON.stringify(row)}`);
      assert.ok(Number(row[4]) >= Number(row[2]), 'p99 >= p50');
    }
    assert.ok(Number(await page.textContent('#t-mem')) > 10, 'resident memory shown');
    assert.match(await page.textContent('#t-cpu') ?? '', /^\d/);
    const colours = await page.$$eval('#batch-dist .dist-name', (els) => els.map((e) => (e as unknown as { style: { color: string } }).style.color));
    assert.equal(new Set(colours).size, colours.length, `one colour per model: ${colours}`);
    const qps = Number(await page.textContent('#t-qps'));
    assert.ok(qps > 0, `throughput tile shows traffic (${qps})`);
    assert.ok(sent > 0);

    // A temporary path: the tracked docs/dashboard.png is updated by hand, never by a test run.
    const shot = join(tmp.dir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, 'a screenshot was written');
    await browser.close();
    browser = undefined;
    assert.deepEqual(problems, [], 'no console errors, failed requests or error responses');
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { fp32, values } from '../../src/client/index.js';
import { getJson, serve, tempDir } from './helpers.js';

/**
 * The main port's pages for people, without a browser (browser.test.ts drives them in chromium):
 * the demo page and the client bundle are served with their types; the public weights route
 * reads the application-wide weights, moves with feedback and shows nothing per user; and
 * `--no-demo-page` leaves only the client bundle.
 */
describe('the demo page routes on the main port', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let bare: Awaited<ReturnType<typeof serve>>;

  before(async () => {
    writeClassifier(tmp.dir, 'a', { seed: 1, inputDim: 4, classes: 3 });
    writeClassifier(tmp.dir, 'b', { seed: 2, inputDim: 4, classes: 3 });
    server = await serve(tmp.dir);
    server.apps.add({ name: 'pick', input_type: 'floats', input_shape: [4], latency_slo_micros: 500_000, default_output: -1, policy: 'exp4', models: ['a', 'b'], seed: 1 });
    bare = await serve(tmp.dir, { demoPage: false, adminPort: -1 });
  });
  after(async () => {
    await server?.close();
    await bare?.close();
    tmp.cleanup();
  });

  it('serves the page, its script and style, and the client bundle', async () => {
    for (const [path, type] of [['/', /text\/html/], ['/site/demo.js', /text\/javascript/], ['/site/demo.css', /text\/css/], ['/client/skiff.js', /text\/javascript/], ['/client/skiff.js.map', /application\/json/]] as const) {
      const r = await fetch(`${server.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', type, path);
    }
    const page = await (await fetch(`${server.url}/`)).text();
    assert.match(page, /<script type="module" src="\/site\/demo.js">/);
  });

  it('/site/info lists the models with their tensors and the applications', async () => {
    const { status, json } = await getJson(`${server.url}/site/info`);
    assert.equal(status, 200);
    assert.deepEqual(json.models.map((m: { name: string }) => m.name).sort(), ['a', 'b']);
    const a = json.models.find((m: { name: string }) => m.name === 'a');
    assert.equal(a.ready, true);
    assert.deepEqual(a.inputs[0].shape, [-1, 4]);
    assert.deepEqual(json.apps, [{ name: 'pick', policy: 'exp4', models: ['a', 'b'], input_type: 'floats', latency_slo_micros: 500_000 }]);
  });

  it('the weights route reads the shared context, follows feedback, and creates no state', async () => {
    const url = `${server.url}/site/apps/pick/weights`;
    const first = await getJson(url);
    assert.equal(first.status, 200);
    assert.deepEqual(first.json, { app_name: 'pick', policy: 'exp4', weights: { a: 0.5, b: 0.5 } });
    assert.equal(server.apps.store.get('pick', ''), undefined, 'reading created no state');
    const client = await SkiffClient.connect(server.wsUrl);
    try {
      // An input the two models disagree on, labelled as `a` reads it: `a` gains weight.
      let x: number[] | undefined;
      let label = -1;
      for (let i = 0; i < 50 && !x; i++) {
        const row = [Math.sin(i), Math.cos(3 * i), i % 5 - 2, (i * 7) % 3 - 1];
        const [ra, rb] = await Promise.all(['a', 'b'].map((model) => client.infer({ model, inputs: [fp32('input', row, [1, 4])], outputs: ['label'] })));
        const [la, lb] = [values(ra!.outputs[0]!)[0]!, values(rb!.outputs[0]!)[0]!];
        if (la !== lb) [x, label] = [row, la];
      }
      assert.ok(x, 'the two models disagree somewhere');
      const fb = await client.sendFeedback({ app: 'pick', inputs: [fp32('input', x, [4])], label });
      assert.equal(fb.error, undefined);
      // Per-user feedback changes that user's state, not the shared one the page shows.
      const user = await client.sendFeedback({ app: 'pick', user: 'u1', inputs: [fp32('input', [4, 3, 2, 1], [4])], label: 0 });
      assert.equal(user.error, undefined);
    } finally {
      await client.close();
    }
    const after = await getJson(url);
    assert.ok(after.json.weights.a > 0.5 && after.json.weights.b < 0.5, `feedback moved the weights: ${JSON.stringify(after.json.weights)}`);
    const admin = await fetch(`${server.adminUrl}/admin/get_selection_state`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ app_name: 'pick' }) });
    assert.deepEqual(((await admin.json()) as { weights: unknown }).weights, after.json.weights, 'the same weights as the admin API shows');
    const missing = await getJson(`${server.url}/site/apps/nope/weights`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 'APP_NOT_FOUND');
  });

  it('--no-demo-page: / and /site/... answer 404, the client bundle stays', async () => {
    for (const path of ['/', '/site/info', '/site/demo.js', '/site/apps/pick/weights']) {
      const { status, json } = await getJson(`${bare.url}${path}`);
      assert.equal(status, 404, path);
      assert.equal(json.code, 'NOT_FOUND', path);
    }
    assert.equal((await fetch(`${bare.url}/client/skiff.js`)).status, 200);
  });
});

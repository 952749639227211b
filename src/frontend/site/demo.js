// The demo page: draw a digit, stream it over Skiff's WebSocket protocol (the browser build of
// skiff-serve/client, served at /client/skiff.js) to every model and application, show their
// answers, the applications' policy weights, feedback, accuracy and a latency histogram.
import { SkiffClient, fp32, values } from '/client/skiff.js';

const $ = (id) => document.getElementById(id);
/** An element with attributes (`class`, `data-*`, ...) and children (nodes or text, never HTML). */
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};
const pad = $('pad');
const ctx = pad.getContext('2d', { willReadFrequently: true });
const thumb = $('thumb').getContext('2d');
const hist = $('histogram').getContext('2d');

/** Observable state, also read by the browser test (window.skiffDemo). */
const state = {
  connected: false,
  queries: 0,
  answers: 0,
  feedback: 0,
  models: [],
  apps: [],
  last: {}, // name -> { answer, latencyMs, error, chosen }
  accuracy: {}, // name -> { right, total }
  weights: {}, // app -> { model: weight }
  latencies: [],
  input: undefined,
};
window.skiffDemo = state;

// ---- connection ---------------------------------------------------------------------------------
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const showState = (s) => {
  state.connected = s === 'open';
  $('dot').className = `dot ${s === 'open' ? 'open' : s === 'closed' ? 'closed' : ''}`;
  $('status').textContent = s === 'open' ? `connected to ${location.host}` : s;
};
const client = await SkiffClient.connect(wsUrl, { maxInFlight: 256, onStateChange: showState });
showState('open');

// ---- what the server serves -------------------------------------------------------------------------
const info = await (await fetch('/site/info')).json();
const isDigitModel = (m) => m.ready && m.inputs.length === 1 && m.inputs[0].datatype === 'FP32' && [784, -1].includes(m.inputs[0].shape.at(-1));
state.models = info.models.filter(isDigitModel).map((m) => ({ name: m.name, input: m.inputs[0].name }));
const digitNames = new Set(state.models.map((m) => m.name));
state.apps = info.apps.filter((a) => a.input_type === 'floats' && a.models.some((m) => digitNames.has(m)));
if (!state.models.length && !state.apps.length) {
  $('main').replaceChildren(el('section', { class: 'panel' },
    el('h2', {}, `Skiff ${info.version} is running`),
    el('p', {}, `No model here takes a 28×28 digit (FP32 [N, 784]), so there is nothing to draw for. Models: ${info.models.map((m) => m.name).join(', ') || 'none'}.`),
    el('p', {}, 'Query them with the Open Inference Protocol at ', el('code', {}, '/v2/models/<name>/infer'),
      ' or over WebSocket at ', el('code', {}, '/ws'), ' with ', el('a', { href: '/client/skiff.js' }, 'the client'), '.')));
  throw new Error('no digit models');
}

const modelRows = new Map();
for (const m of state.models) {
  const tr = el('tr', { 'data-model': m.name },
    el('td', {}, m.name), el('td', { class: 'answer' }, '–'), el('td', { class: 'latency' }, '–'), el('td', { class: 'acc' }, '–'));
  $('models').tBodies[0].append(tr);
  modelRows.set(m.name, tr);
}
const appBoxes = new Map();
for (const a of state.apps) {
  const kind = a.policy === 'exp4' ? 'exp4: a weighted ensemble of every model' : a.policy === 'exp3' ? 'exp3: one model per query, drawn by weight' : a.policy;
  const div = el('div', { class: 'app', 'data-app': a.name },
    el('div', { class: 'head' },
      el('div', {}, el('b', {}, a.name), ' ', el('span', { class: 'sub' }, kind)),
      el('div', {}, el('span', { class: 'answer' }, '–'), ' ', el('span', { class: 'sub latency' }))),
    el('div', { class: 'sub detail' }), el('div', { class: 'weights' }), el('div', { class: 'sub acc' }));
  $('apps').append(div);
  appBoxes.set(a.name, div);
}
if (!state.apps.length) $('apps').replaceChildren(el('p', { class: 'empty' }, 'No application takes digits.'));

const labels = $('labels');
for (let d = 0; d < 10; d++) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = String(d);
  b.dataset.label = String(d);
  b.disabled = true;
  b.addEventListener('click', () => void sendFeedback(d));
  labels.append(b);
}

// ---- drawing -----------------------------------------------------------------------------------------
function clearPad() {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, pad.width, pad.height);
  thumb.fillStyle = '#000';
  thumb.fillRect(0, 0, 28, 28);
  state.input = undefined;
  for (const b of labels.children) b.disabled = true;
}
clearPad();
ctx.lineCap = 'round';
ctx.lineJoin = 'round';
ctx.lineWidth = 22;
ctx.strokeStyle = '#fff';
let drawing = false;
let lastSent = 0;
const at = (e) => {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
};
pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  pad.setPointerCapture(e.pointerId);
  const [x, y] = at(e);
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + 0.1, y);
  ctx.stroke();
});
pad.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  const [x, y] = at(e);
  ctx.lineTo(x, y);
  ctx.stroke();
  if (performance.now() - lastSent > 150) void predict();
});
const end = () => {
  if (!drawing) return;
  drawing = false;
  void predict();
};
pad.addEventListener('pointerup', end);
pad.addEventListener('pointercancel', end);
$('clear').addEventListener('click', clearPad);

/** The pad as MNIST sees a digit: the ink's box scaled to 20x20, centred by mass in 28x28, [0, 1]. */
function digitPixels() {
  const { data, width, height } = ctx.getImageData(0, 0, pad.width, pad.height);
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[(y * width + x) * 4] > 16) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return undefined;
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const small = document.createElement('canvas');
  small.width = small.height = 28;
  const s = small.getContext('2d', { willReadFrequently: true });
  s.fillStyle = '#000';
  s.fillRect(0, 0, 28, 28);
  const w = ((x1 - x0 + 1) * 20) / side, h = ((y1 - y0 + 1) * 20) / side;
  s.imageSmoothingQuality = 'high';
  s.drawImage(pad, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (28 - w) / 2, (28 - h) / 2, w, h);
  const px = s.getImageData(0, 0, 28, 28).data;
  let mass = 0, cx = 0, cy = 0;
  const v = new Float32Array(784);
  for (let i = 0; i < 784; i++) {
    v[i] = px[i * 4] / 255;
    mass += v[i];
    cx += v[i] * (i % 28);
    cy += v[i] * Math.floor(i / 28);
  }
  const dx = Math.round(13.5 - cx / mass), dy = Math.round(13.5 - cy / mass);
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) out[y * 28 + x] = v[sy * 28 + sx];
    }
  }
  const img = thumb.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const g = Math.round(out[i] * 255);
    img.data.set([g, g, g, 255], i * 4);
  }
  thumb.putImageData(img, 0, 0);
  return out;
}

// ---- queries ---------------------------------------------------------------------------------------
const decoder = new TextDecoder();
/** A model's answer as a digit: its `label`, a string answer, or the argmax of its scores. */
function digitOf(outputs) {
  const label = outputs.find((t) => t.name === 'label') ?? outputs.find((t) => t.datatype === 'INT64');
  if (label) return values(label)[0];
  const text = outputs.find((t) => t.datatype === 'BYTES');
  if (text) return Number(decoder.decode(text.data.subarray(4, 4 + new DataView(text.data.buffer, text.data.byteOffset).getUint32(0, true))));
  const scores = outputs.find((t) => t.datatype === 'FP32' || t.datatype === 'FP64');
  if (!scores) return undefined;
  const v = values(scores);
  return v.length === 1 ? v[0] : v.indexOf(Math.max(...v));
}

let generation = 0;
async function predict() {
  const x = digitPixels();
  if (!x) return;
  lastSent = performance.now();
  const gen = ++generation;
  state.input = x;
  for (const b of labels.children) b.disabled = false;
  const calls = [
    ...state.models.map((m) => ['model', m.name, client.infer({ model: m.name, inputs: [fp32(m.input, x, [1, 784])], timeoutMs: 2000 })]),
    ...state.apps.map((a) => ['app', a.name, client.infer({ app: a.name, inputs: [fp32('input', x, [784])], timeoutMs: 2000 })]),
  ];
  state.queries += calls.length;
  const t0 = performance.now();
  await Promise.all(calls.map(async ([kind, name, call]) => {
    const r = await call;
    const ms = performance.now() - t0;
    state.answers++;
    record(ms);
    if (gen !== generation) return; // a newer drawing is on its way
    if (kind === 'model') {
      const answer = r.error ? undefined : digitOf(r.outputs);
      state.last[name] = { answer, latencyMs: ms, error: r.error?.code };
      const tr = modelRows.get(name);
      tr.querySelector('.answer').textContent = r.error ? r.error.code : String(answer);
      tr.querySelector('.latency').textContent = `${ms.toFixed(1)} ms`;
    } else {
      const out = r.outputs.find((t) => t.name === 'output');
      const answer = out ? digitOf([out]) : undefined;
      state.last[name] = { answer, latencyMs: ms, error: r.error?.code, chosen: r.modelsUsed ?? [], isDefault: r.isDefault === true };
      const box = appBoxes.get(name);
      box.querySelector('.answer').textContent = r.error ? r.error.code : r.isDefault ? `default (${answer})` : String(answer);
      box.querySelector('.latency').textContent = `${ms.toFixed(1)} ms`;
      const used = r.modelsUsed ?? [];
      box.querySelector('.detail').textContent = r.isDefault ? `default: ${r.defaultExplanation ?? ''}` : `answered by ${used.join(' + ') || '–'}`;
      renderWeights(name);
    }
  }));
  drawHistogram();
}

// ---- feedback and weights ------------------------------------------------------------------------------
async function loadWeights(app) {
  const r = await fetch(`/site/apps/${encodeURIComponent(app)}/weights`);
  if (r.ok) state.weights[app] = (await r.json()).weights;
  renderWeights(app);
}

function renderWeights(app) {
  const box = appBoxes.get(app);
  const w = state.weights[app];
  if (!box || !w) return;
  const total = Object.values(w).reduce((a, b) => a + b, 0) || 1;
  const chosen = new Set((state.last[app]?.chosen ?? []).map((m) => m.replace(/:\d+$/, '')));
  box.querySelector('.weights').replaceChildren(...Object.entries(w).map(([m, v]) => {
    const fill = el('div', { class: 'fill' });
    fill.style.width = `${((100 * v) / total).toFixed(1)}%`;
    return el('div', { class: `bar${chosen.has(m) ? ' chosen' : ''}`, 'data-model': m },
      el('span', {}, m), el('div', { class: 'track' }, fill), el('span', { class: 'w' }, (v / total).toFixed(3)));
  }));
}

function score(name, right) {
  const a = (state.accuracy[name] ??= { right: 0, total: 0 });
  a.total++;
  if (right) a.right++;
  return `${((100 * a.right) / a.total).toFixed(0)}% of ${a.total}`;
}

async function sendFeedback(label) {
  const x = state.input;
  if (!x) return;
  for (const b of labels.children) b.disabled = true;
  for (const m of state.models) {
    const acc = score(m.name, state.last[m.name]?.answer === label);
    modelRows.get(m.name).querySelector('.acc').textContent = acc;
  }
  await Promise.all(state.apps.map(async (a) => {
    const acc = score(a.name, state.last[a.name]?.answer === label);
    appBoxes.get(a.name).querySelector('.acc').textContent = `accuracy ${acc}`;
    const r = await client.sendFeedback({ app: a.name, inputs: [fp32('input', x, [784])], label });
    if (r.error) appBoxes.get(a.name).querySelector('.detail').textContent = `feedback: ${r.error.code}`;
    await loadWeights(a.name);
  }));
  state.feedback++;
}

// ---- latency histogram -------------------------------------------------------------------------------
const BUCKETS = 24; // 0.1 ms .. ~1.6 s, two per octave
const bucketOf = (ms) => Math.max(0, Math.min(BUCKETS - 1, Math.floor(2 * Math.log2(ms / 0.1))));
const counts = new Array(BUCKETS).fill(0);
function record(ms) {
  state.latencies.push(ms);
  counts[bucketOf(ms)]++;
}
function drawHistogram() {
  const c = hist.canvas;
  hist.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...counts);
  const w = c.width / BUCKETS;
  hist.fillStyle = '#58a6ff';
  for (let i = 0; i < BUCKETS; i++) {
    const h = ((c.height - 24) * counts[i]) / max;
    hist.fillRect(i * w + 1, c.height - 18 - h, w - 2, h);
  }
  hist.fillStyle = '#8b96a3';
  hist.font = '10px system-ui';
  for (let i = 0; i < BUCKETS; i += 4) {
    const ms = 0.1 * 2 ** (i / 2);
    hist.fillText(ms < 1 ? `${ms.toFixed(1)}` : `${Math.round(ms)}`, i * w + 2, c.height - 4);
  }
  hist.fillText('ms', c.width - 16, c.height - 4);
  const sorted = [...state.latencies].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  $('latency-summary').textContent = sorted.length ? `p50 ${q(0.5).toFixed(1)} ms · p99 ${q(0.99).toFixed(1)} ms · ${sorted.length} queries` : '';
}
drawHistogram();
await Promise.all(state.apps.map((a) => loadWeights(a.name)));
document.body.dataset.ready = 'true';

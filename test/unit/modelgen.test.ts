import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { ORT_TYPE, type AnyTypedArray } from '../../src/tensor/datatype.js';
import type { TensorSpec } from '../../src/tensor/tensor.js';
import { buildModel } from '../../src/modelgen/onnx-writer.js';
import { loadMnist, IMAGE_SIZE } from '../../src/modelgen/mnist-data.js';
import { classifierModel } from '../../src/modelgen/nets.js';
import { Prng } from '../../src/modelgen/prng.js';
import { brokenClassifier, trainSoftmaxRegression, trainWeak } from '../../src/modelgen/train.js';
import {
  writeClassifier, writeComputeMlp, writeDelayModel, writeFixedShape, writeIdentity, writeMultiIO, writeNet,
  type HostTensor, type HostTensors, type ModelFixture,
} from '../../src/modelgen/fixtures.js';

const DEMO_DIR = fileURLToPath(new URL('../../../models/demo/', import.meta.url));
const FP32_TOL = 1e-5;

let repo: string;
before(() => {
  repo = mkdtempSync(join(tmpdir(), 'skiff-modelgen-'));
});
after(() => {
  rmSync(repo, { recursive: true, force: true });
});

/** Random inputs matching `specs`, with the variable batch dim set to `batch`. */
function randomInputs(specs: readonly TensorSpec[], batch: number, prng: Prng): HostTensors {
  const out: HostTensors = {};
  for (const s of specs) {
    const shape = s.shape.map((d) => (d === -1 ? batch : d));
    const n = shape.reduce((a, b) => a * b, 1);
    let data: AnyTypedArray;
    if (s.datatype === 'FP32') data = prng.fill(n, (p) => p.uniform(-2, 2));
    else if (s.datatype === 'INT64') data = BigInt64Array.from({ length: n }, () => BigInt(prng.int(21) - 10));
    else throw new Error(`no generator for ${s.datatype}`);
    out[s.name] = { datatype: s.datatype, shape, data };
  }
  return out;
}

function toOrt(inputs: HostTensors): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) {
    feeds[name] = new ort.Tensor(ORT_TYPE[t.datatype] as 'float32', t.data as Float32Array, t.shape);
  }
  return feeds;
}

function assertMatches(name: string, actual: ort.Tensor, expected: HostTensor): void {
  assert.equal(actual.type, ORT_TYPE[expected.datatype], `${name} type`);
  assert.deepEqual([...actual.dims], expected.shape, `${name} shape`);
  if (expected.datatype === 'FP32') {
    const a = actual.data as Float32Array;
    const e = expected.data as Float32Array;
    assert.equal(a.length, e.length);
    for (let i = 0; i < e.length; i++) {
      assert.ok(Math.abs(a[i]! - e[i]!) <= FP32_TOL, `${name}[${i}]: ort ${a[i]} vs reference ${e[i]}`);
    }
  } else {
    assert.deepEqual(actual.data, expected.data, `${name} values`);
  }
}

function assertMetadata(meta: readonly ort.InferenceSession.ValueMetadata[], specs: readonly TensorSpec[]): void {
  assert.deepEqual(meta.map((m) => m.name), specs.map((s) => s.name));
  specs.forEach((s, i) => {
    const m = meta[i]!;
    assert.ok(m.isTensor, `${s.name} is a tensor`);
    assert.equal(m.type, ORT_TYPE[s.datatype], `${s.name} type`);
    assert.equal(m.shape.length, s.shape.length, `${s.name} rank`);
    s.shape.forEach((d, j) => {
      if (d === -1) assert.equal(typeof m.shape[j], 'string', `${s.name} dim ${j} is symbolic`);
      else assert.equal(m.shape[j], d, `${s.name} dim ${j}`);
    });
  });
}

/** Load the fixture in ORT, check its metadata and compare outputs with `forward` on each batch size. */
async function checkAgainstOrt(fx: ModelFixture, batches: readonly number[], seed: number): Promise<void> {
  const session = await ort.InferenceSession.create(fx.file);
  try {
    assertMetadata(session.inputMetadata, fx.inputs);
    assertMetadata(session.outputMetadata, fx.outputs);
    const prng = new Prng(seed);
    for (const batch of batches) {
      const inputs = randomInputs(fx.inputs, batch, prng);
      const result = await session.run(toOrt(inputs));
      const expected = fx.forward(inputs);
      assert.deepEqual(Object.keys(result).sort(), Object.keys(expected).sort());
      for (const [name, t] of Object.entries(expected)) assertMatches(`${fx.name}/${name} (batch ${batch})`, result[name]!, t);
    }
  } finally {
    await session.release();
  }
}

async function ortAccuracy(file: string): Promise<number> {
  const { test } = loadMnist();
  const session = await ort.InferenceSession.create(file);
  try {
    const out = await session.run({ input: new ort.Tensor('float32', test.x, [test.n, IMAGE_SIZE]) });
    const label = out.label!.data as BigInt64Array;
    let hits = 0;
    for (let i = 0; i < test.n; i++) if (Number(label[i]) === test.y[i]) hits++;
    return hits / test.n;
  } finally {
    await session.release();
  }
}

describe('onnx-writer', () => {
  const spec = {
    inputs: [{ name: 'a', elemType: 'FP32', shape: ['N', 2] }],
    outputs: [{ name: 'b', elemType: 'FP32', shape: ['N', 2] }],
    nodes: [{ op: 'Relu', inputs: ['a'], outputs: ['b'] }],
  } as const;

  it('encodes equal specs to equal bytes', () => {
    assert.deepEqual(buildModel(spec), buildModel(spec));
  });

  it('rejects a node input that is never defined', () => {
    assert.throws(() => buildModel({ ...spec, nodes: [{ op: 'Relu', inputs: ['nope'], outputs: ['b'] }] }), /'nope' is not defined/);
  });

  it('rejects a graph output that no node produces', () => {
    assert.throws(() => buildModel({ ...spec, nodes: [{ op: 'Relu', inputs: ['a'], outputs: ['c'] }] }), /'b' is never produced/);
  });

  it('rejects an initializer whose data does not fit its dims', () => {
    assert.throws(
      () => buildModel({ ...spec, initializers: [{ name: 'w', datatype: 'FP32', dims: [2, 2], data: new Float32Array(3) }] }),
      /3 elements for dims \[2,2\]/,
    );
  });

  it('is rejected by onnxruntime when an op is wrong (the runtime really validates our output)', async () => {
    const bad = buildModel({ ...spec, nodes: [{ op: 'NoSuchOp', inputs: ['a'], outputs: ['b'] }] });
    await assert.rejects(ort.InferenceSession.create(bad));
  });
});

describe('fixtures match onnxruntime', () => {
  const BATCHES = [1, 3, 17];

  it('classifier (softmax regression, 64 -> 10)', async () => {
    await checkAgainstOrt(writeClassifier(repo, 'clf', { seed: 11 }), BATCHES, 1);
  });

  it('classifier with a hidden layer, custom dims and version', async () => {
    const fx = writeClassifier(repo, 'clf_h', { seed: 12, inputDim: 20, classes: 5, hidden: 32, version: 3 });
    assert.equal(fx.file, join(repo, 'clf_h', '3', 'model.onnx'));
    assert.deepEqual(fx.outputs.map((o) => o.shape), [[-1, 5], [-1]]);
    await checkAgainstOrt(fx, BATCHES, 2);
  });

  it('multi-IO: y = x * k, k_next = k + 1', async () => {
    const fx = writeMultiIO(repo, 'multi');
    const out = fx.forward({
      x: { datatype: 'FP32', shape: [1, 4], data: new Float32Array([1, -2, 0.5, 3]) },
      k: { datatype: 'INT64', shape: [1, 1], data: new BigInt64Array([3n]) },
    });
    assert.deepEqual([...out.y!.data], [3, -6, 1.5, 9]);
    assert.deepEqual([...out.k_next!.data], [4n]);
    await checkAgainstOrt(fx, BATCHES, 3);
  });

  it('fixed shape: y = 2x + 1 with no batch dim', async () => {
    const fx = writeFixedShape(repo, 'fixed');
    await checkAgainstOrt(fx, [2], 4); // no variable dim: the batch size is ignored
    assert.throws(() => fx.forward({ x: { datatype: 'FP32', shape: [3, 3], data: new Float32Array(9) } }), /expected FP32\[2,3\]/);
  });

  it('identity', async () => {
    const fx = writeIdentity(repo, 'ident', { dim: 16 });
    await checkAgainstOrt(fx, BATCHES, 5);
    await checkAgainstOrt(writeIdentity(repo, 'ident784'), [1, 3], 6);
  });

  it('compute-bound MLP 784-1024-1024-10', async () => {
    const fx = writeComputeMlp(repo, 'compute', { seed: 7 });
    assert.ok(readFileSync(fx.file).byteLength > 7_000_000);
    await checkAgainstOrt(fx, BATCHES, 7);
  });

  it('reference forward rejects missing or mistyped inputs', () => {
    const fx = writeMultiIO(repo, 'multi_check');
    const x: HostTensor = { datatype: 'FP32', shape: [2, 4], data: new Float32Array(8) };
    assert.throws(() => fx.forward({ x }), /missing input 'k'/);
    assert.throws(() => fx.forward({ x, k: { datatype: 'INT32', shape: [2, 1], data: new Int32Array(2) } }), /input 'k'/);
  });

  it('same seed gives the same model bytes, another seed different ones', () => {
    const a = readFileSync(writeClassifier(repo, 'same_a', { seed: 42 }).file);
    const b = readFileSync(writeClassifier(repo, 'same_b', { seed: 42 }).file);
    const c = readFileSync(writeClassifier(repo, 'same_c', { seed: 43 }).file);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });
});

describe('delay model (JS function)', () => {
  it('exports metadata and a predict that doubles its input after blocking', async () => {
    const fx = writeDelayModel(repo, 'delay', { delayMs: 30, perRowUs: 2000, dim: 3 });
    assert.ok(fx.file.endsWith(join('delay', '1', 'model.mjs')));
    const mod = (await import(pathToFileURL(fx.file).href)) as {
      metadata: { inputs: TensorSpec[]; outputs: TensorSpec[] };
      predict: (inputs: HostTensors) => HostTensors | Promise<HostTensors>;
    };
    assert.deepEqual(mod.metadata, { inputs: fx.inputs, outputs: fx.outputs });
    assert.deepEqual(mod.metadata.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 3] }]);

    const inputs = randomInputs(fx.inputs, 5, new Prng(8));
    const wall0 = performance.now();
    const cpu0 = process.cpuUsage();
    const out = await mod.predict(inputs);
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - wall0;
    assert.ok(wall >= 30 + 5 * 2, `blocked ${wall.toFixed(1)} ms, expected >= 40 ms`);
    assert.ok((cpu.user + cpu.system) / 1000 < wall / 2, 'waits without burning CPU');
    const expected = fx.forward(inputs);
    assert.deepEqual(out.output!.shape, [5, 3]);
    assert.equal(out.output!.datatype, 'FP32');
    assert.deepEqual(out.output!.data, expected.output!.data);
    assert.deepEqual([...out.output!.data], [...(inputs.input!.data as Float32Array)].map((v) => v * 2));
    assert.throws(() => mod.predict({ input: { datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) } }), TypeError);
  });

  it('rejects invalid delays', () => {
    assert.throws(() => writeDelayModel(repo, 'bad', { delayMs: -1 }), RangeError);
    assert.throws(() => writeDelayModel(repo, 'bad', { delayMs: 1, perRowUs: Number.NaN }), RangeError);
  });
});

describe('MNIST data and demo models', () => {
  it('splits the 10,000 digits deterministically, stratified, cached', () => {
    const m = loadMnist();
    assert.equal(loadMnist(), m);
    assert.equal(m.train.n + m.test.n, 10_000);
    assert.ok(m.test.n >= 1900 && m.test.n <= 2100);
    assert.equal(m.train.x.length, m.train.n * IMAGE_SIZE);
    assert.equal(m.test.x.length, m.test.n * IMAGE_SIZE);
    for (const split of [m.train, m.test]) {
      const counts = new Array<number>(10).fill(0);
      for (const y of split.y) counts[y]!++;
      for (const c of counts) assert.ok(c > split.n * 0.07 && c < split.n * 0.13, `class share ${c}/${split.n}`);
      assert.ok(split.x.every((v) => v >= 0 && v <= 1));
    }
    assert.deepEqual([...m.train.y.subarray(0, 20)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('committed demo models reach their held-out accuracy targets in onnxruntime', async () => {
    const logreg = await ortAccuracy(join(DEMO_DIR, 'mnist_logreg', '1', 'model.onnx'));
    const mlp = await ortAccuracy(join(DEMO_DIR, 'mnist_mlp', '1', 'model.onnx'));
    const weak = await ortAccuracy(join(DEMO_DIR, 'mnist_weak', '1', 'model.onnx'));
    assert.ok(logreg >= 0.85, `logreg ${logreg}`);
    assert.ok(mlp >= 0.9, `mlp ${mlp}`);
    assert.ok(weak >= 0.3 && weak <= 0.8, `weak ${weak}`);
    assert.ok(mlp > logreg && logreg > weak, 'the models are ordered by quality');
  });

  it('committed demo configs carry the serving settings', () => {
    for (const name of ['mnist_logreg', 'mnist_mlp', 'mnist_weak']) {
      const cfg = JSON.parse(readFileSync(join(DEMO_DIR, name, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(cfg).sort(), ['batch_wait_timeout_us', 'latency_objective_us', 'max_batch_size', 'replicas', 'threads']);
      assert.ok(Number.isInteger(cfg.max_batch_size) && (cfg.max_batch_size as number) > 0);
    }
  });

  it('training is reproducible: retraining gives the committed bytes', () => {
    const { train } = loadMnist();
    assert.deepEqual(classifierModel(trainWeak(train)), new Uint8Array(readFileSync(join(DEMO_DIR, 'mnist_weak', '1', 'model.onnx'))));
    assert.deepEqual(classifierModel(trainSoftmaxRegression(train)), new Uint8Array(readFileSync(join(DEMO_DIR, 'mnist_logreg', '1', 'model.onnx'))));
  });

  it('the broken classifier is near chance', async () => {
    const fx = writeNet(repo, 'broken', brokenClassifier());
    const acc = await ortAccuracy(fx.file);
    assert.ok(acc < 0.25, `broken ${acc}`);
  });
});

/**
 * Train the demo classifiers and write the demo model repository:
 *   node dist/src/modelgen/cli.js [--out models/demo]
 * writes <out>/{mnist_logreg,mnist_mlp,mnist_weak}/1/model.onnx and each model's config.json,
 * and prints held-out accuracy, training time and file size. Output is byte-for-byte reproducible.
 */
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writeModelConfig, writeNet } from './fixtures.js';
import { loadMnist, type Split } from './mnist-data.js';
import type { Mlp } from './nets.js';
import { accuracy, trainHiddenMlp, trainSoftmaxRegression, trainWeak } from './train.js';

interface DemoModel {
  name: string;
  train: (data: Split) => Mlp;
  maxBatchSize: number;
}

const DEMO_MODELS: readonly DemoModel[] = [
  { name: 'mnist_logreg', train: (d) => trainSoftmaxRegression(d), maxBatchSize: 128 },
  { name: 'mnist_mlp', train: (d) => trainHiddenMlp(d), maxBatchSize: 64 },
  { name: 'mnist_weak', train: (d) => trainWeak(d), maxBatchSize: 128 },
];

function main(): void {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'models/demo' } } });
  const out = values.out;
  const { train, test } = loadMnist();
  console.log(`MNIST: ${train.n} training / ${test.n} held-out digits`);
  const started = performance.now();
  for (const m of DEMO_MODELS) {
    const t0 = performance.now();
    const net = m.train(train);
    const seconds = (performance.now() - t0) / 1000;
    const { file } = writeNet(out, m.name, net);
    writeModelConfig(out, m.name, {
      max_batch_size: m.maxBatchSize,
      batch_wait_timeout_us: 500,
      latency_objective_us: 20000,
      replicas: 1,
      threads: 1,
    });
    const kb = statSync(file).size / 1024;
    console.log(`${m.name}: held-out accuracy ${accuracy(net, test).toFixed(4)}, trained in ${seconds.toFixed(1)} s, ${file} ${kb.toFixed(1)} KiB`);
  }
  console.log(`total training ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

main();

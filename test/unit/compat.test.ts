/**
 * The pure pieces of the drop-in work (issue 13): /metrics content negotiation with the Accept
 * headers real scrapers and clients send, Accept-Encoding, the zlib-header sniff of "deflate"
 * bodies, the 405 route table, and Triton's model configuration both ways (what GET .../config
 * answers must load back unchanged through load_model(config=...); what Skiff cannot honour is
 * refused, never ignored).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { wantsExposition } from '../../src/frontend/metrics.js';
import { acceptedEncoding, isZlibHeader } from '../../src/http/exchange.js';
import { allowedMethods } from '../../src/frontend/method-check.js';
import { checkTritonTensors, fromTritonConfig, toTritonConfig } from '../../src/config/triton-config.js';
import { MODEL_CONFIG_FIELDS, parseModelConfig } from '../../src/config/model-config.js';
import { SkiffError } from '../../src/errors.js';

describe('GET /metrics content negotiation', () => {
  // What the scrapers send (prometheus/prometheus scrape.go acceptHeader, by version and setting).
  const PROMETHEUS_2 = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
  const PROMETHEUS_3 = 'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2';
  const PROMETHEUS_3_NATIVE = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1';
  const TEXT_ONLY = 'text/plain;version=0.0.4;q=0.9,*/*;q=0.1';

  it('a Prometheus scrape gets the exposition format', () => {
    for (const a of [PROMETHEUS_2, PROMETHEUS_3, PROMETHEUS_3_NATIVE, TEXT_ONLY, 'text/plain', 'text/plain, */*', 'text/*']) assert.equal(wantsExposition(a), true, a);
  });

  it('curl, python-requests (inspect_instance), browsers, JSON clients and no Accept get Clipper\'s JSON', () => {
    const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';
    for (const a of ['', '*/*', 'application/json', browser, '*/*, text/plain;q=0.5', 'application/json, text/plain;q=0.9', 'text/plain;q=0, */*']) {
      assert.equal(wantsExposition(a), false, a);
    }
  });
});

describe('encodings', () => {
  it('Accept-Encoding: gzip preferred, deflate, q=0 refused, * counts', () => {
    assert.equal(acceptedEncoding('gzip'), 'gzip');
    assert.equal(acceptedEncoding('deflate'), 'deflate');
    assert.equal(acceptedEncoding('gzip, deflate, br'), 'gzip');
    assert.equal(acceptedEncoding('gzip;q=0, deflate'), 'deflate');
    assert.equal(acceptedEncoding('identity'), undefined);
    assert.equal(acceptedEncoding('br'), undefined);
    assert.equal(acceptedEncoding('*'), 'gzip');
    assert.equal(acceptedEncoding(''), undefined);
  });

  it('a "deflate" body is told zlib-wrapped (tritonclient\'s zlib.compress) from raw deflate', () => {
    const text = Buffer.from(JSON.stringify({ inputs: [] }));
    for (const level of [0, 1, 6, 9]) assert.equal(isZlibHeader(deflateSync(text, { level })), true, `zlib level ${level}`);
    assert.equal(isZlibHeader(deflateRawSync(text)), false);
    assert.equal(isZlibHeader(gzipSync(text)), false);
    assert.equal(isZlibHeader(new Uint8Array([0x78])), false);
  });
});

describe('405 route table', () => {
  it('names the methods of known main-port paths, and nothing for unknown ones', () => {
    assert.equal(allowedMethods('/v2/models/m/infer'), 'POST');
    assert.equal(allowedMethods('/v2/models/m/versions/2/infer'), 'POST');
    assert.equal(allowedMethods('/v2/models/m/config'), 'GET');
    assert.equal(allowedMethods('/v2/repository/index'), 'POST');
    assert.equal(allowedMethods('/metrics'), 'GET');
    assert.equal(allowedMethods('/app1/predict/'), 'POST');
    assert.equal(allowedMethods('/v2/nothing/here/at/all'), undefined);
  });
});

describe('Triton model configuration', () => {
  const served = {
    inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [-1, 4] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32' as const, shape: [-1, 3] }, { name: 'label', datatype: 'INT64' as const, shape: [-1] }],
    batchable: true,
  };
  const config = parseModelConfig('clf', { max_batch_size: 32, batch_wait_timeout_us: 700, latency_objective_us: 5000, version_policy: { all: true } });
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof SkiffError, String(err));
      return err.code;
    }
    return 'no error';
  };

  it('answers Triton\'s JSON form: TYPE_* data types, dims without the batch dim, batching, one CPU group', () => {
    const c = toTritonConfig({ name: 'clf', kind: 'onnx', ...served, config, replicas: 2 });
    assert.equal(c.platform, 'onnxruntime_onnx');
    assert.equal(c.backend, 'onnxruntime');
    assert.equal(c.max_batch_size, 32);
    assert.deepEqual(c.input, [{ name: 'input', data_type: 'TYPE_FP32', dims: [4] }]);
    assert.deepEqual(c.output, [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [3] }, { name: 'label', data_type: 'TYPE_INT64', dims: [] }]);
    assert.deepEqual(c.dynamic_batching, { max_queue_delay_microseconds: 700 });
    assert.deepEqual(c.instance_group, [{ name: 'clf', kind: 'KIND_CPU', count: 2 }]);
    assert.deepEqual(c.version_policy, { all: {} });
    // A model that does not batch: max_batch_size 0, full dims, no dynamic_batching.
    const single = toTritonConfig({ name: 'clf', kind: 'onnx', ...served, batchable: false, config, replicas: 1 });
    assert.equal(single.max_batch_size, 0);
    assert.deepEqual((single.input as { dims: number[] }[])[0]!.dims, [-1, 4]);
    assert.equal(single.dynamic_batching, undefined);
  });

  it('what GET .../config answers loads back unchanged, and means the same config', () => {
    const c = toTritonConfig({ name: 'clf', kind: 'onnx', ...served, config, replicas: 2 });
    const wire = JSON.parse(JSON.stringify(c)) as Record<string, unknown>;
    const override = fromTritonConfig('clf', wire, MODEL_CONFIG_FIELDS);
    checkTritonTensors('clf', wire, served);
    assert.deepEqual(override, { version_policy: { all: true }, max_batch_size: 32, batch_wait_timeout_us: 700, replicas: 2, latency_objective_us: 5000, pipeline_depth: config.pipeline_depth });
    const back = parseModelConfig('clf', { ...config, ...override });
    assert.deepEqual({ ...back }, { ...config, replicas: 2 });
  });

  it('a config copied from a Triton server (every default field spelled out, 64-bit integers as strings) loads', () => {
    const triton = {
      name: 'clf', platform: 'onnxruntime_onnx', backend: 'onnxruntime', runtime: '',
      version_policy: { latest: { num_versions: 1 } }, max_batch_size: 8,
      input: [{ name: 'input', data_type: 'TYPE_FP32', format: 'FORMAT_NONE', dims: ['4'], is_shape_tensor: false, allow_ragged_batch: false, optional: false }],
      output: [{ name: 'label', data_type: 'TYPE_INT64', dims: [], label_filename: '', is_shape_tensor: false }],
      batch_input: [], batch_output: [],
      optimization: { priority: 'PRIORITY_DEFAULT', input_pinned_memory: { enable: true }, output_pinned_memory: { enable: true }, gather_kernel_buffer_threshold: 0, eager_batching: false },
      dynamic_batching: { preferred_batch_size: [], max_queue_delay_microseconds: '250', preserve_ordering: false, priority_levels: '0', default_priority_level: '0', priority_queue_policy: {} },
      instance_group: [{ name: 'clf', kind: 'KIND_CPU', count: 3, gpus: [], secondary_devices: [], profile: [], passive: false, host_policy: '' }],
      default_model_filename: 'model.onnx', cc_model_filenames: {}, metric_tags: {}, parameters: {}, model_warmup: [],
    };
    assert.deepEqual(fromTritonConfig('clf', triton, MODEL_CONFIG_FIELDS), { version_policy: { latest: 1 }, max_batch_size: 8, batch_wait_timeout_us: 250, replicas: 3 });
    checkTritonTensors('clf', triton, served);
  });

  it('refuses with CONFIG_INVALID what Skiff cannot honour', () => {
    const refused: unknown[] = [
      { sequence_batching: {} },
      { ensemble_scheduling: { step: [] } },
      { dynamic_batching: { preferred_batch_size: [4, 8] } },
      { dynamic_batching: { max_queue_delay_microseconds: 'soon' } },
      { dynamic_batching: { priority_levels: 3 } },
      { instance_group: [{ kind: 'KIND_GPU', count: 1 }] },
      { instance_group: [{ count: 1, gpus: [0] }] },
      { instance_group: [{ count: 1 }, { count: 1 }] },
      { instance_group: [{ count: 0 }] },
      { max_batch_size: -1 },
      { max_batch_size: '' },
      { name: 'other' },
      { platform: 'tensorrt_plan' },
      { backend: 'python' },
      { parameters: { EXECUTION_ENV_PATH: { string_value: '/tmp/env' } } },
      { parameters: { pipeline_depth: { string_value: 'deep' } } },
      { optimization: { execution_accelerators: { cpu_execution_accelerator: [{ name: 'openvino' }] } } },
      { input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [4], reshape: { shape: [2, 2] } }] },
      { output: [{ name: 'label', data_type: 'TYPE_INT64', dims: [], label_filename: 'labels.txt' }] },
      { default_model_filename: 'model.plan' },
      { version_policy: { newest: true } },
      [],
    ];
    // As a load applies an override: mapped, then validated with the model's config against the schema.
    for (const raw of refused) assert.equal(code(() => parseModelConfig('clf', { ...config, ...fromTritonConfig('clf', raw, MODEL_CONFIG_FIELDS) })), 'CONFIG_INVALID', JSON.stringify(raw));
  });

  it('refuses tensors that are not the model\'s: another name, type or dims', () => {
    const bad: Record<string, unknown>[] = [
      { input: [{ name: 'pixels', data_type: 'TYPE_FP32', dims: [4] }] },
      { input: [{ name: 'input', data_type: 'TYPE_FP64', dims: [4] }] },
      { input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [2, 2] }] },
      // max_batch_size 0 for a batching model: Triton's dims then carry the batch dim.
      { max_batch_size: 0, input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [4] }] },
      { output: [{ name: 'label', data_type: 'TYPE_INT32', dims: [] }] },
    ];
    for (const raw of bad) assert.equal(code(() => checkTritonTensors('clf', raw, served)), 'CONFIG_INVALID', JSON.stringify(raw));
    assert.equal(code(() => checkTritonTensors('clf', { max_batch_size: 0, input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [-1, 4] }] }, served)), 'no error');
  });
});

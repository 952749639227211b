/**
 * What one load run is (LoadSpec) and what it measured (LoadResult). Plain data: specs travel
 * to the generator threads by structured clone, results go into the JSON report.
 */
import type { ServerWindow } from './server-stats.js';
import type { Percentiles } from './histogram.js';

/**
 * - `ws`: Skiff's WebSocket/FlatBuffers protocol (answers matched by id);
 * - `http`: OIP REST `POST /v2/models/{model}/infer` with a JSON body;
 * - `ws-echo`: the same frames to a server that echoes each message (each echo answers the
 *   oldest outstanding frame: the frontend-limit baseline).
 */
export type Protocol = 'ws' | 'http' | 'ws-echo';

export interface TargetSpec {
  protocol: Protocol;
  /** `ws://host:port/path` for ws and ws-echo; `http://host:port` for http. */
  url: string;
  model: string;
  /** Timeout sent with every query (µs); 0 leaves it to the server's default. */
  timeoutUs: number;
}

/** The model input the payload fills: FP32, `rowShape` = the dims after the batch dim. */
export interface InputSpec {
  name: string;
  rowShape: number[];
}

/**
 * Where query inputs come from:
 * - `fixed`: one input, sent every time;
 * - `dataset`: MNIST held-out digits (784-element inputs only), in order, cycling;
 * - `random`: `poolSize` seeded uniform [0,1) rows, cycling.
 * With `cacheHitRate` h set, a query repeats one of the first `poolSize` inputs with
 * probability h and is otherwise made unique (two elements overwritten with a per-query
 * marker), so a server cache can hit at most a fraction h of the queries (after warm-up).
 */
export interface PayloadSpec {
  source: 'fixed' | 'dataset' | 'random';
  poolSize: number;
  cacheHitRate?: number;
}

export type LoadMode =
  | { kind: 'open'; /** Target requests per second, Poisson arrivals. */ rate: number }
  | { kind: 'closed'; /** Units (frames or HTTP requests) in flight, each re-sent as soon as it is answered. */ concurrency: number };

export interface LoadSpec {
  target: TargetSpec;
  input: InputSpec;
  payload: PayloadSpec;
  mode: LoadMode;
  /** WebSocket only: requests per frame (a unit). HTTP always sends one request per unit. */
  requestsPerFrame: number;
  /** Connections across all generator threads (HTTP closed loop: one per unit in flight). */
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** How long to wait for outstanding answers after the measured window; the rest count as errors. */
  drainMs: number;
  seed: number;
  /**
   * Open loop: poll for the last `spinUs` µs before each send instead of sleeping (sub-ms send
   * precision at the cost of a busy generator thread). 0 (default) sleeps on 1 ms timers.
   */
  spinUs?: number;
  /** Generator bottleneck thresholds: send lag p99 (µs, open loop) and event-loop utilisation. */
  maxSendLagUs?: number;
  maxGeneratorElu?: number;
}

export interface GeneratorHealth {
  threads: number;
  /** Event-loop utilisation of each generator thread during the measured window (0..1). */
  elu: number[];
  /** CPU time of each generator thread / window length (0..1; -1 where unavailable). */
  cpu: number[];
  /** Open loop: how late units left against their Poisson schedule (µs). */
  sendLagUs?: Percentiles;
  /** True when the generator, not the server, may have limited the run. */
  bottleneck: boolean;
  reasons: string[];
}

export interface LoadResult {
  label?: string;
  protocol: Protocol;
  model: string;
  mode: LoadMode;
  requestsPerFrame: number;
  connections: number;
  /** Length of the measured window (s). */
  seconds: number;
  offeredRate?: number;
  /** Requests sent in the measured window; sent = ok + defaults + errors. */
  sent: number;
  ok: number;
  defaults: number;
  errors: number;
  errorCodes: Record<string, number>;
  /** Answered (ok + defaults) per second. */
  throughput: number;
  /** Latency with coordinated-omission correction (open loop: from the intended send time). */
  latencyUs: Percentiles;
  /** Closed loop: the uncorrected latency; open loop: from the actual send time. */
  rawLatencyUs: Percentiles;
  /** Closed loop: the expected interval used for the correction (warm-up median, µs). */
  expectedIntervalUs?: number;
  generator: GeneratorHealth;
  /** The corrected latency histogram, compressed base64 (for re-analysis and merging). */
  histogram: string;
  /** The server's main-thread cost over the window, when the run was probed (lib/server-stats.ts). */
  server?: ServerWindow;
}

export function validateSpec(s: LoadSpec): void {
  const fail = (m: string): never => {
    throw new RangeError(`bench: ${m}`);
  };
  if (!/^(ws|wss|http):\/\//.test(s.target.url)) fail(`bad url ${s.target.url}`);
  if ((s.target.protocol === 'http') !== s.target.url.startsWith('http:')) fail(`protocol ${s.target.protocol} does not match url ${s.target.url}`);
  if (s.target.protocol !== 'ws-echo' && !s.target.model) fail('a model is required');
  if (s.mode.kind === 'open' && !(s.mode.rate > 0)) fail('open loop needs a rate > 0');
  if (s.mode.kind === 'closed' && !(Number.isInteger(s.mode.concurrency) && s.mode.concurrency >= 1)) fail('closed loop needs an integer concurrency >= 1');
  if (!(Number.isInteger(s.requestsPerFrame) && s.requestsPerFrame >= 1)) fail('requests per frame must be an integer >= 1');
  if (s.target.protocol === 'http' && s.requestsPerFrame !== 1) fail('HTTP sends one request per unit (requests per frame must be 1)');
  if (!(Number.isInteger(s.connections) && s.connections >= 1)) fail('connections must be an integer >= 1');
  if (!(s.durationMs > 0) || !(s.warmupMs >= 0) || !(s.drainMs >= 0)) fail('durations must be positive');
  if (s.payload.cacheHitRate !== undefined && !(s.payload.cacheHitRate >= 0 && s.payload.cacheHitRate <= 1)) fail('cache hit rate must be in [0, 1]');
  if (!(Number.isInteger(s.payload.poolSize) && s.payload.poolSize >= 1)) fail('pool size must be an integer >= 1');
  if (s.input.rowShape.reduce((a, b) => a * b, 1) < 2 && s.payload.cacheHitRate !== undefined) fail('cache-hit payloads need inputs of at least 2 elements');
}

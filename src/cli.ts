#!/usr/bin/env node
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { startServer, DEFAULT_SERVER_OPTIONS } from './server.js';
import { createLogger, LOG_LEVELS, type LogFormat } from './log.js';
import { uwsChoice } from './http/uws.js';
import { isLoopback } from './http/guard.js';
import { isErrorCode } from './errors.js';
import { basename, resolve } from 'node:path';
import { DEMO_APPS, DEMO_REPOSITORY } from './paths.js';

/** The `skiff` command line: serve, demo (and bench, in bench/). */

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}]`);
    return n;
  };
}

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

const program = new Command();
program.name('skiff').description('Low-latency online prediction server: adaptive batching, ONNX Runtime workers, WebSocket/FlatBuffers and OIP REST.')
  .version(`${PKG.name} ${PKG.version} (Node ${process.version}, uWebSockets.js ${uwsChoice.npm ?? 'not loadable here'})`, '-V, --version');

const serve = program
  .command('serve', { isDefault: true })
  .description('serve a model repository (default: the bundled MNIST demo models)')
  .option('--model-repository <dir>', 'model repository: <dir>/<model>/<version>/model.onnx', DEMO_REPOSITORY)
  .option('--model-dir <dir>', 'instead of a repository: serve the one model in <dir> (KServe\'s /mnt/models): <dir>/model.onnx or one <dir>/*.onnx, <dir>/<version>/model.onnx, or a whole repository')
  .option('--model-name <name>', 'the name of the model served from --model-dir (default: the directory\'s name)')
  .option('--host <host>', 'address to bind', DEFAULT_SERVER_OPTIONS.host)
  .option('--port <port>', 'HTTP + WebSocket port (0 = ephemeral)', int('port', 0, 65535), DEFAULT_SERVER_OPTIONS.port)
  .option('--max-body-bytes <n>', 'HTTP body limit (default: the largest full batch a loaded model takes, as JSON; 1-256 MiB)', int('max-body-bytes', 1024, 2 ** 31 - 1))
  .option('--max-timeout-ms <ms>', 'longest deadline a query may ask for (timeout_us, OIP parameters.timeout, app SLOs); longer ones are clamped', int('max-timeout-ms', 1, 86_400_000), DEFAULT_SERVER_OPTIONS.maxTimeoutMs)
  .option('--max-inflight-bytes <n>', 'request bytes in flight (bodies being read, inputs of unanswered queries) before new work is refused with 503', int('max-inflight-bytes', 1 << 20, 2 ** 40), DEFAULT_SERVER_OPTIONS.maxInflightBytes)
  .option('--max-frame-bytes <n>', 'WebSocket frame limit', int('max-frame-bytes', 1024, 2 ** 31 - 1), DEFAULT_SERVER_OPTIONS.maxFrameBytes)
  .option('--apps <file>', 'application definitions (JSON); default: the demo apps when serving the demo repository')
  .option('--admin-host <host>', 'address of the admin listener', DEFAULT_SERVER_OPTIONS.adminHost)
  .option('--admin-port <port>', 'admin API port (0 = ephemeral, -1 = off)', int('admin-port', -1, 65535), DEFAULT_SERVER_OPTIONS.adminPort)
  .option('--admin-token <token>', 'bearer token of the admin API (or SKIFF_ADMIN_TOKEN); default: a random one, written to a file only you can read', process.env.SKIFF_ADMIN_TOKEN)
  .option('--no-admin-token', 'no admin token at all: only for a trusted loopback (e.g. Clipper\'s admin client, which sends none)')
  .option('--allow-origin <origin>', 'a browser origin allowed to call either listener and open /ws (repeatable or a comma list; e.g. https://ops.example.com; * allows every origin)', collect, [])
  .option('--allow-host <name>', 'a Host name the listeners answer to besides their bound address, e.g. behind a proxy (repeatable)', collect, [])
  .option('--allow-code-upload', 'accept executable model code (JS modules) through the admin API; off: only ONNX uploads', false)
  .option('--state-db <file>', 'SQLite file for apps, models, versions, links and selection state (survives restarts)')
  .option('--state <url>', 'shared state in Redis instead (redis://host:port/db): several instances share apps, links, versions, replicas and learning (SKIFF_STATE)', process.env.SKIFF_STATE || undefined)
  .option('--flush-interval-ms <ms>', 'how often selection state is flushed to the state db', int('flush-interval-ms', 10, 3_600_000), DEFAULT_SERVER_OPTIONS.flushIntervalMs)
  .option('--max-user-states <n>', 'per-user selection states kept in memory (least recently used out first; the state db keeps the rest)', int('max-user-states', 1, 100_000_000), DEFAULT_SERVER_OPTIONS.maxUserStates)
  .option('--upload-dir <dir>', 'where add_model stores uploaded model files (default <repository>/.uploads)')
  .option('--drain-timeout-ms <ms>', 'on SIGTERM, how long in-flight queries may take to finish', int('drain-timeout-ms', 0, 3_600_000), DEFAULT_SERVER_OPTIONS.drainTimeoutMs)
  .option('--tls-key <file>', 'PEM private key: serve HTTPS/WSS on the main listener')
  .option('--tls-cert <file>', 'PEM certificate for --tls-key')
  .option('--admin-tls-key <file>', 'PEM private key for the admin listener (default: --tls-key)')
  .option('--admin-tls-cert <file>', 'PEM certificate for the admin listener (default: --tls-cert)')
  .option('--ws-max-pending-bytes <n>', 'unsent replies allowed per WebSocket before it is closed as a slow reader', int('ws-max-pending-bytes', 65536, 2 ** 31 - 1), DEFAULT_SERVER_OPTIONS.wsMaxPendingBytes)
  .option('--rpc-port <port>', 'container RPC port (Clipper\'s protocol; 0 = a free port); off unless given (a repository that launches containers gets a free loopback port)', int('rpc-port', 0, 65535))
  .option('--rpc-host <host>', 'address of the container RPC port: whatever connects to it serves answers, so keep it on loopback or a private network', '127.0.0.1')
  .option('--no-demo-page', 'no demo page at / and no /site/... routes on the main port (the browser client /client/skiff.js stays)')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default(process.env.SKIFF_LOG_LEVEL ?? 'info'))
  .addOption(new Option('--log-format <format>', 'logs on stderr: pretty lines, or JSON lines for a collector (default: pretty on a terminal, else json)').choices(['pretty', 'json']))
  .action(async (o: {
    modelRepository: string; host: string; port: number; maxBodyBytes?: number; maxInflightBytes: number; maxTimeoutMs: number; maxFrameBytes: number; modelDir?: string; modelName?: string; logLevel: string; logFormat?: LogFormat;
    apps?: string; adminHost: string; adminPort: number; adminToken?: string | false; allowOrigin: string[]; allowHost: string[]; allowCodeUpload: boolean;
    stateDb?: string; state?: string; flushIntervalMs: number; maxUserStates: number; uploadDir?: string; drainTimeoutMs: number;
    tlsKey?: string; tlsCert?: string; adminTlsKey?: string; adminTlsCert?: string; wsMaxPendingBytes: number;
    rpcPort?: number; rpcHost: string; demoPage: boolean;
  }) => {
    const pair = (key?: string, cert?: string, what = 'main') => {
      if (!key && !cert) return undefined;
      if (!key || !cert) throw new Error(`TLS for the ${what} listener needs both a key and a certificate`);
      return { key, cert };
    };
    const tls = pair(o.tlsKey, o.tlsCert);
    const adminTls = pair(o.adminTlsKey, o.adminTlsCert, 'admin') ?? tls;
    const [dirOpt, dir] = o.modelDir === undefined ? ['--model-repository', o.modelRepository] : ['--model-dir', o.modelDir];
    if (!existsSync(dir)) throw new Error(`${dirOpt} ${dir}: no such directory`);
    if (!statSync(dir).isDirectory()) throw new Error(`${dirOpt} ${dir}: not a directory`);
    if (o.apps !== undefined && !existsSync(o.apps)) throw new Error(`--apps ${o.apps}: no such file`);
    if (o.stateDb !== undefined && existsSync(o.stateDb) && statSync(o.stateDb).isDirectory()) throw new Error(`--state-db ${o.stateDb}: is a directory, expected a file`);
    const logger = createLogger(o.logLevel, o.logFormat);
    if (o.adminToken === '') o.adminToken = undefined; // an empty SKIFF_ADMIN_TOKEN: generate one
    if (o.modelName !== undefined && o.modelDir === undefined) throw new Error('--model-name names the model of --model-dir: give --model-dir too');
    if (o.modelDir !== undefined && serve.getOptionValueSource('modelRepository') !== 'default') throw new Error('give --model-repository or --model-dir, not both');
    const modelRepository = o.modelDir === undefined ? o.modelRepository : undefined;
    const modelDir = o.modelDir === undefined ? undefined : { dir: o.modelDir, name: o.modelName ?? basename(resolve(o.modelDir)) };
    const appsFile = o.apps ?? (modelRepository === DEMO_REPOSITORY ? DEMO_APPS : undefined);
    const server = await startServer({
      modelRepository, modelDir, host: o.host, port: o.port,
      maxBodyBytes: o.maxBodyBytes, maxInflightBytes: o.maxInflightBytes, maxTimeoutMs: o.maxTimeoutMs, maxFrameBytes: o.maxFrameBytes, logger,
      appsFile, optionalModels: appsFile === DEMO_APPS ? ['sklearn_digits'] : [], adminHost: o.adminHost, adminPort: o.adminPort, adminToken: o.adminToken,
      allowOrigins: o.allowOrigin, allowHosts: o.allowHost, allowCodeUpload: o.allowCodeUpload,
      stateDb: o.stateDb, state: o.state, flushIntervalMs: o.flushIntervalMs, maxUserStates: o.maxUserStates, uploadDir: o.uploadDir, drainTimeoutMs: o.drainTimeoutMs,
      tls, adminTls, wsMaxPendingBytes: o.wsMaxPendingBytes, rpcPort: o.rpcPort, rpcHost: o.rpcHost, demoPage: o.demoPage,
    });
    const [h, w] = tls ? ['https', 'wss'] : ['http', 'ws'];
    const main = `${h}://${server.host}:${server.port}`;
    const pad = (k: string) => `  ${k.padEnd(12)}`;
    console.log(`skiff ${PKG.version} serving ${server.loadReport.loaded.join(', ') || 'no models'}`);
    console.log(`${pad('demo page')}${main}/   (draw a digit; every model and application answers live)`);
    console.log(`${pad('WebSocket')}${w}://${server.host}:${server.port}/ws   (browser client: ${main}/client/skiff.js)`);
    console.log(`${pad('OIP REST')}${main}/v2/models/<model>/infer   (KServe v2 / Triton; Clipper: ${main}/<app>/predict)`);
    if (o.state) console.log(`${pad('state')}${(await import('./store/redis-store.js')).redactUrl(o.state)}   (shared: every instance given this URL serves the same apps, versions and learning)`);
    if (server.apps.list().length) console.log(`${pad('apps')}${server.apps.list().map((a) => `${a.name} (${a.policy}: ${a.models.join(', ')})`).join('; ')}`);
    if (server.adminPort !== undefined) {
      const admin = `${adminTls ? 'https' : 'http'}://${o.adminHost.includes(':') ? `[${o.adminHost}]` : o.adminHost}:${server.adminPort}`;
      console.log(`${pad('admin API')}${admin}/admin/<call>   (Clipper's management calls; ${admin}/admin/ping)`);
      if (server.adminTokenFile) {
        console.log(`${pad('admin token')}${server.adminTokenFile}   (send it as Authorization: Bearer <token>)`);
        // A link with the token only on an interactive terminal, never into a captured log.
        const link = process.stdout.isTTY && server.adminToken ? `?token=${encodeURIComponent(server.adminToken)}` : '?token=<token>';
        console.log(`${pad('dashboard')}${admin}/dashboard${link}`);
      } else {
        console.log(`${pad('dashboard')}${admin}/dashboard${server.adminToken === undefined ? '' : '?token=<your --admin-token>'}`);
        if (server.adminToken === undefined) console.log(`${pad('')}admin API without a token (--no-admin-token): anything on this machine can manage the server`);
      }
    }
    const rpc = server.containers.rpc;
    if (rpc) console.log(`${pad('containers')}tcp://${rpc.host}:${rpc.port}   (Clipper's RPC: model containers connect here)`);
    for (const f of server.loadReport.failed) console.log(`${pad('not loaded')}${f.model}${f.version ? `:${f.version}` : ''}: ${f.error.code}: ${f.error.message}`);
    const sampleModel = server.loadReport.loaded.map((m) => m.replace(/:\d+$/, '')).find((m) => m === 'mnist_mlp');
    if (sampleModel) console.log(`${pad('try')}npx skiff sample | curl -s -H 'content-type: application/json' -d @- ${main}/v2/models/${sampleModel}/infer`);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: draining in-flight queries');
      void server.close().then(() => process.exit(0), (err: unknown) => {
        console.error(err);
        process.exit(1);
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    console.log('ready');
  });

program
  .command('demo')
  .description('stream held-out MNIST digits over WebSocket to the demo models; print accuracy, throughput and latency')
  .option('--url <url>', 'WebSocket URL of the server (default: the one `npm start` runs)', 'ws://127.0.0.1:8000/ws')
  .option('--standalone', 'start a server of the demo models in this process instead', false)
  .option('--count <n>', 'held-out digits per model (at most the 1,996 there are)', int('count', 1, 1_000_000), 1996)
  .option('--window <n>', 'queries in flight', int('window', 1, 100_000), 64)
  .action(async (o: { url?: string; count: number; window: number; standalone: boolean }) => {
    const { runDemo } = await import('./demo.js');
    await runDemo(o);
  });

program
  .command('sample')
  .description('print a request body holding one held-out MNIST digit (784 floats in [0, 1], a 28x28 image row by row), for curl')
  .addOption(new Option('--format <format>', 'oip: a KServe v2 / Triton infer body; clipper: a Clipper predict body').choices(['oip', 'clipper']).default('oip'))
  .option('--index <n>', 'which held-out digit', int('index', 0, 1995), 0)
  .action(async (o: { format: 'oip' | 'clipper'; index: number }) => {
    const { sampleBody } = await import('./sample.js');
    const { body, label } = sampleBody(o.format, o.index);
    console.error(`held-out digit #${o.index}: a ${label}`);
    console.log(body);
  });

program
  .command('conformance')
  .description('check an Open Inference Protocol (KServe v2) server against the protocol: prints a pass/fail table, exits 1 on a failure')
  .argument('<url>', 'the server, e.g. http://127.0.0.1:8000')
  .option('--model <name>', 'the model to exercise (default: the first one the repository index lists)')
  .option('--header <header>', 'an extra request header, "Name: value" (repeatable; e.g. Authorization for the repository extension)', collect, [])
  .action(async (url: string, o: { model?: string; header: string[] }) => {
    const { runConformance, formatTable } = await import('./conformance/check.js');
    const headers: Record<string, string> = {};
    for (const h of o.header) {
      const i = h.indexOf(':');
      if (i <= 0) throw new InvalidArgumentError(`--header ${h}: expected "Name: value"`);
      headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
    }
    const results = await runConformance({ url, model: o.model, headers });
    console.log(formatTable(results));
    process.exitCode = results.some((r) => !r.pass) ? 1 : 0;
  });

program
  .command('bench')
  .description('load generator for Skiff WebSocket and OIP REST JSON (`skiff bench --help` for its options)')
  .helpOption(false)
  .allowUnknownOption(true)
  .allowExcessArguments(true)
  .argument('[options...]')
  .action(async (args: string[]) => {
    const { runBenchCli } = await import('../bench/cli.js');
    process.exitCode = await runBenchCli(args);
  });

// A failed start is one line, without a stack: the code (e.g. PORT_IN_USE) and what to do.
program.parseAsync(process.argv).catch((err: unknown) => {
  const code = (err as { code?: unknown } | null)?.code;
  console.error(err instanceof Error ? (isErrorCode(code) ? `${code}: ${err.message}` : err.message) : err);
  process.exit(1);
});

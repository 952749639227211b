/**
 * The Kubernetes and KServe manifests under deploy/: valid against their schemas (and refused
 * once broken), and saying what Skiff needs — probes on the OIP health routes, the scrape
 * annotations on the served port, non-root and read-only containers, the model repository as a
 * mounted volume, Redis as a dependency, KServe's runtime contract. Every cross-reference (a
 * Service's selector and target port, the HPA's target, volumes and claims, the runtime an
 * InferenceService names) must land on something that exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { argValue, DEPLOY, kindOf, loadManifests, manifestErrors, PACKAGE, parseManifests, type Manifest } from './deploy-files.js';
import { tempDir } from '../integration/helpers.js';

const K8S = join(DEPLOY, 'k8s');
const KSERVE = join(DEPLOY, 'kserve');
const k8s = loadManifests(K8S);
const kserve = loadManifests(KSERVE);
const all = [...k8s, ...kserve];

function one(list: readonly Manifest[], kind: string, name: string): any {
  const found = list.filter((m) => m.obj.kind === kind && m.obj.metadata?.name === name);
  assert.equal(found.length, 1, `exactly one ${kind} ${name}`);
  return found[0]!.obj;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function clone<T>(x: T): T {
  return structuredClone(x);
}

/** The HTTP probe's port as a number (a named port resolved against the container's ports). */
function probePort(probe: any, container: any): number {
  const p = probe.httpGet.port;
  return typeof p === 'number' ? p : container.ports.find((x: any) => x.name === p)?.containerPort;
}

/** Non-root, no privilege escalation, no capabilities, read-only root file system. */
function assertLockedDown(container: any, pod: any, what: string): void {
  const sc = { ...pod?.securityContext, ...container.securityContext };
  assert.equal(sc.runAsNonRoot, true, `${what}: runAsNonRoot`);
  assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, `${what}: a numeric non-root runAsUser`);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation`);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
  assert.notEqual(container.securityContext.privileged, true, `${what}: privileged`);
  assert.deepEqual(container.securityContext.capabilities?.drop, ['ALL'], `${what}: capabilities`);
  for (const r of ['requests', 'limits']) assert.ok(container.resources?.[r]?.memory, `${what}: resources.${r}.memory`);
  assert.ok(container.resources.requests.cpu, `${what}: resources.requests.cpu (the HPA scales on it)`);
}

test('every manifest is valid against the Kubernetes and KServe schemas, with no unknown field', () => {
  assert.ok(k8s.length >= 8 && kserve.length === 2, `${k8s.length} + ${kserve.length} documents`);
  const errors = manifestErrors(all.map((m) => m.obj));
  all.forEach((m, i) => assert.deepEqual(errors[i], [], `${m.file}#${m.index} (${kindOf(m.obj)})`));
});

test('broken copies are refused: wrong types, misspelt and misplaced fields, values outside an enum', () => {
  const deployment = one(k8s, 'Deployment', 'skiff');
  const hpa = one(k8s, 'HorizontalPodAutoscaler', 'skiff');
  const service = one(k8s, 'Service', 'skiff');
  const runtime = one(kserve, 'ServingRuntime', 'skiff');
  const isvc = one(kserve, 'InferenceService', 'mnist-mlp');
  const mutations: [string, any][] = [];
  const mutate = (what: string, base: any, f: (o: any) => void): void => {
    const o = clone(base);
    f(o);
    mutations.push([what, o]);
  };
  mutate('containerPort as a string', deployment, (o) => { o.spec.template.spec.containers[0].ports[0].containerPort = '8000'; });
  mutate('replicas as a string', deployment, (o) => { o.spec.replicas = 'two'; });
  mutate('readinessProbe misspelt', deployment, (o) => {
    const c = o.spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
  });
  mutate('env value as a number', deployment, (o) => { o.spec.template.spec.containers[0].env[3].value = 3; });
  mutate('a container without a name', deployment, (o) => { delete o.spec.template.spec.containers[0].name; });
  mutate('a v1 HPA field in autoscaling/v2', hpa, (o) => { o.spec.targetCPUUtilizationPercentage = 70; });
  mutate('HPA without scaleTargetRef', hpa, (o) => { delete o.spec.scaleTargetRef; });
  mutate('Service port as a string', service, (o) => { o.spec.ports[0].port = '8000'; });
  mutate('autoSelect as a string', runtime, (o) => { o.spec.supportedModelFormats[0].autoSelect = 'true'; });
  mutate('priority 0 (minimum 1)', runtime, (o) => { o.spec.supportedModelFormats[0].priority = 0; });
  mutate('an unknown protocol version', runtime, (o) => { o.spec.protocolVersions = ['v3']; });
  mutate('spec.container (singular)', runtime, (o) => {
    o.spec.container = o.spec.containers;
    delete o.spec.containers;
  });
  mutate('a runtime container with args as a string', runtime, (o) => { o.spec.containers[0].args = 'serve --port 8080'; });
  mutate('a runtime container field misspelt', runtime, (o) => { o.spec.containers[0].readinesProbe = {}; });
  mutate('storageURI (wrong case)', isvc, (o) => {
    o.spec.predictor.model.storageURI = o.spec.predictor.model.storageUri;
    delete o.spec.predictor.model.storageUri;
  });
  mutate('an InferenceService without a predictor', isvc, (o) => { delete o.spec.predictor; });
  mutate('minReplicas as a string', isvc, (o) => { o.spec.predictor.minReplicas = '1'; });
  mutate('a model resource quantity as an object', isvc, (o) => { o.spec.predictor.model.resources.limits.memory = { gi: 2 }; });
  mutate('modelFormat without a name', isvc, (o) => { delete o.spec.predictor.model.modelFormat.name; });
  const errors = manifestErrors(mutations.map(([, o]) => o));
  mutations.forEach(([what], i) => assert.notDeepEqual(errors[i], [], `${what} was accepted`));
});

test('a broken manifest file is refused as Kubernetes reads it: YAML 1.1 booleans, duplicate keys', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const text = readFileSync(join(K8S, 'redis.yaml'), 'utf8');
  // Kubernetes reads YAML 1.1, where an unquoted yes is a boolean: an argument list with it is invalid.
  const unquoted = text.replace('- "yes"', '- yes');
  assert.notEqual(unquoted, text);
  const file = join(d.dir, 'redis.yaml');
  writeFileSync(file, unquoted);
  const errors = manifestErrors(parseManifests(readFileSync(file, 'utf8'), file).map((m) => m.obj));
  assert.notDeepEqual(errors[0], []);
  assert.deepEqual(errors[2], []);
  const dup = readFileSync(join(K8S, 'service.yaml'), 'utf8').replace('  type: ClusterIP\n', '  type: ClusterIP\n  type: NodePort\n');
  assert.throws(() => parseManifests(dup, 'service.yaml'));
});

test('the kustomization lists every manifest file in deploy/k8s', () => {
  const kust = k8s.filter((m) => m.obj.kind === 'Kustomization');
  assert.equal(kust.length, 1);
  const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...kust[0]!.obj.resources].sort(), files);
});

test('the Skiff Deployment: probes, scrape annotations, locked-down container, repository volume, Redis, no exposed admin', () => {
  const d = one(k8s, 'Deployment', 'skiff');
  const pod = d.spec.template;
  assert.ok(matches(d.spec.selector.matchLabels, pod.metadata.labels), 'selector matches the pod labels');
  assert.equal(pod.spec.containers.length, 1);
  const c = pod.spec.containers[0];
  assert.equal(c.image, `skiff:${PACKAGE.version}`, 'the image tag is the package version');
  assert.equal(c.args[0], 'serve');
  const port = Number(argValue(c.args, '--port'));
  assert.equal(argValue(c.args, '--host'), '0.0.0.0');
  assert.deepEqual(c.ports.map((p: any) => p.containerPort), [port], 'the one container port is the served port');

  assert.equal(c.readinessProbe.httpGet.path, '/v2/health/ready');
  assert.equal(c.livenessProbe.httpGet.path, '/v2/health/live');
  assert.equal(c.startupProbe.httpGet.path, '/v2/health/live');
  for (const p of [c.readinessProbe, c.livenessProbe, c.startupProbe]) assert.equal(probePort(p, c), port);

  const ann = pod.metadata.annotations;
  assert.equal(ann['prometheus.io/scrape'], 'true');
  assert.equal(Number(ann['prometheus.io/port']), port);
  assert.equal(ann['prometheus.io/path'], '/metrics');

  assertLockedDown(c, pod.spec, 'skiff');
  assert.equal(pod.spec.automountServiceAccountToken, false);

  // The model repository is a mounted, read-only volume backed by a claim these manifests create.
  const repo = argValue(c.args, '--model-repository')!;
  const mount = c.volumeMounts.find((m: any) => m.mountPath === repo);
  assert.ok(mount, 'the model repository is a volume mount');
  assert.equal(mount.readOnly, true);
  const volume = pod.spec.volumes.find((v: any) => v.name === mount.name);
  assert.equal(volume.persistentVolumeClaim.readOnly, true);
  one(k8s, 'PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
  for (const m of c.volumeMounts) assert.ok(pod.spec.volumes.some((v: any) => v.name === m.name), `volume ${m.name} exists`);
  // Everything Skiff writes lands on a volume (the root file system is read-only).
  const uploads = argValue(c.args, '--upload-dir')!;
  const env = Object.fromEntries(c.env.map((e: any) => [e.name, e]));
  for (const dir of [uploads, env.SKIFF_RUNTIME_DIR.value]) {
    assert.ok(c.volumeMounts.some((m: any) => !m.readOnly && dir.startsWith(`${m.mountPath}/`)), `${dir} is on a writable volume`);
  }

  // Redis is a dependency: the state URL names the Redis Service and its port.
  const url = new URL(env.SKIFF_STATE.value);
  assert.equal(url.protocol, 'redis:');
  const redis = one(k8s, 'Service', url.hostname);
  assert.ok(redis.spec.ports.some((p: any) => p.port === Number(url.port)));
  const redisPod = one(k8s, 'Deployment', url.hostname).spec.template;
  assert.ok(matches(redis.spec.selector, redisPod.metadata.labels), 'the Redis Service selects the Redis pod');
  assertLockedDown(redisPod.spec.containers[0], redisPod.spec, 'redis');
  const policy = one(k8s, 'NetworkPolicy', url.hostname);
  assert.ok(matches(policy.spec.podSelector.matchLabels, redisPod.metadata.labels));
  assert.ok(matches(policy.spec.ingress[0].from[0].podSelector.matchLabels, pod.metadata.labels), 'Skiff pods may reach Redis');
  assert.ok(!matches(policy.spec.ingress[0].from[0].podSelector.matchLabels, redisPod.metadata.labels));

  // Nothing that manages the server or runs code is exposed: admin stays on loopback, no RPC port.
  assert.equal(argValue(c.args, '--admin-host'), undefined);
  for (const flag of ['--no-admin-token', '--rpc-port', '--rpc-host', '--allow-code-upload', '--admin-token']) assert.ok(!c.args.includes(flag), flag);
  assert.equal(env.SKIFF_ADMIN_TOKEN.valueFrom.secretKeyRef.optional, true, 'the admin token comes from a Secret, not the manifest');
  assert.ok(!c.env.some((e: any) => /TOKEN|PASSWORD|SECRET/i.test(e.name) && e.value !== undefined), 'no secret value in the manifest');

  // Shutdown: SIGTERM after the preStop pause, then the drain, all inside the grace period.
  const drainS = Number(argValue(c.args, '--drain-timeout-ms')) / 1000;
  const pause = Number(c.lifecycle.preStop.exec.command[1]);
  assert.ok(pod.spec.terminationGracePeriodSeconds > drainS + pause, 'grace period covers the drain');
});

test('the Service, HPA and PodDisruptionBudget point at the Deployment', () => {
  const d = one(k8s, 'Deployment', 'skiff');
  const labels = d.spec.template.metadata.labels;
  const c = d.spec.template.spec.containers[0];
  const svc = one(k8s, 'Service', 'skiff');
  assert.ok(matches(svc.spec.selector, labels));
  for (const p of svc.spec.ports) assert.ok(c.ports.some((cp: any) => cp.name === p.targetPort || cp.containerPort === p.targetPort), `target port ${p.targetPort}`);
  const hpa = one(k8s, 'HorizontalPodAutoscaler', 'skiff');
  assert.equal(hpa.apiVersion, 'autoscaling/v2');
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: d.apiVersion, kind: 'Deployment', name: 'skiff' });
  assert.ok(hpa.spec.metrics.some((m: any) => m.type === 'Resource' && m.resource.name === 'cpu' && m.resource.target.type === 'Utilization'));
  assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
  const pdb = one(k8s, 'PodDisruptionBudget', 'skiff');
  assert.ok(matches(pdb.spec.selector.matchLabels, labels));
  assert.ok(pdb.spec.minAvailable < hpa.spec.minReplicas, 'a drain can proceed');
});

test('the KServe ServingRuntime follows the runtime contract; the InferenceService uses it', () => {
  const rt = one(kserve, 'ServingRuntime', 'skiff');
  assert.ok(rt.spec.supportedModelFormats.some((f: any) => f.name === 'onnx' && f.version === '1' && f.autoSelect === true));
  // Skiff serves no gRPC: v2 REST only, and no h2c port.
  assert.deepEqual(rt.spec.protocolVersions, ['v2']);
  assert.equal(rt.spec.containers.length, 1);
  const c = rt.spec.containers[0];
  assert.equal(c.name, 'kserve-container');
  assert.equal(c.image, `skiff:${PACKAGE.version}`);
  assert.equal(c.args[0], 'serve');
  assert.equal(argValue(c.args, '--port'), '8080');
  assert.equal(argValue(c.args, '--host'), '0.0.0.0');
  assert.equal(argValue(c.args, '--model-dir'), '/mnt/models');
  assert.equal(argValue(c.args, '--model-name'), '{{.Name}}');
  assert.equal(argValue(c.args, '--admin-port'), '-1');
  assert.deepEqual(c.ports.map((p: any) => [p.containerPort, p.name]), [[8080, 'http1']]);
  assert.ok(!c.ports.some((p: any) => p.name === 'h2c'));
  assert.equal(c.readinessProbe.httpGet.path, '/v2/health/ready');
  assert.equal(c.livenessProbe.httpGet.path, '/v2/health/live');
  for (const p of [c.readinessProbe, c.livenessProbe]) assert.equal(probePort(p, c), 8080);
  assert.equal(rt.spec.annotations['prometheus.kserve.io/port'], '8080');
  assert.equal(rt.spec.annotations['prometheus.kserve.io/path'], '/metrics');
  assertLockedDown(c, undefined, 'kserve-container');
  // KServe fills Go-template placeholders from the InferenceService's metadata: only {{.Name}} here.
  for (const a of c.args) assert.ok(!a.includes('{{') || a === '{{.Name}}', a);

  const isvc = one(kserve, 'InferenceService', 'mnist-mlp');
  const model = isvc.spec.predictor.model;
  assert.equal(model.runtime, rt.metadata.name);
  assert.ok(rt.spec.supportedModelFormats.some((f: any) => f.name === model.modelFormat.name && f.version === model.modelFormat.version));
  assert.ok(rt.spec.protocolVersions.includes(model.protocolVersion));
  const uri = new URL(model.storageUri);
  assert.equal(uri.protocol, 'pvc:');
  one(k8s, 'PersistentVolumeClaim', uri.hostname);
});

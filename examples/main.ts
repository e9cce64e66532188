/**
 * The example cdk8s app: `npm run synth` (or `cdk8s synth`) writes one YAML file per chart to dist/.
 * - team-web, one shared namespace (`isolation: 'team'`): a Node.js API with a node_modules cache
 *   inside its sync folder, and a full-stack environment with two sync folders. The team develops
 *   twins of its shared Deployments, which mount that namespace's ConfigMaps and ServiceAccount.
 * - team-data, personal isolation (the default): carol's Python worker, with a pip cache and a Secret
 *   reference, runs in her own namespace, `data-carol-example-com-<hash>`.
 * - web-shop: an application Deployment and its Service written with cdk8s-plus, and its development
 *   twin in replace mode: the Service's traffic goes to the twin, and the original is written with
 *   replicas 0 while the twin exists (delete the twin and the original's 3 replicas come back).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiObject, App, AppProps, Chart, Duration, JsonPatch } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { DevEnvironment, TeamNamespace } from '../constructs';
import { NetworkAllowanceSpec } from '../lib';

/** Dev environments install packages: HTTPS out, but not to private ranges or the cloud metadata endpoint. */
const HTTPS_OUT: NetworkAllowanceSpec = {
  name: 'https-out',
  egressTo: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'] } }],
  ports: [{ port: 443 }],
};

export function buildApp(props: AppProps = {}): App {
  const app = new App(props);

  const web = new Chart(app, 'team-web', { namespace: 'team-web' });
  // The team's namespace comes first in its chart, so its Namespace is applied before what lives in it.
  // Team mode: alice and bob trust each other (see the README's trust model for what that allows).
  const webTeam = new TeamNamespace(web, 'team', {
    team: 'web',
    namespace: 'team-web',
    isolation: 'team',
    members: [
      { user: 'alice@example.com', role: 'developer' },
      { user: 'bob@example.com', role: 'developer' },
      { group: 'web-leads', role: 'admin' },
      { group: 'support', role: 'viewer' },
    ],
    ci: [{ name: 'deployer' }],
    network: { allow: [HTTPS_OUT] },
  });
  const api = new DevEnvironment(web, 'api', {
    name: 'api',
    owner: 'alice@example.com',
    image: 'node:20-bookworm',
    sync: [{ local: 'examples/sources/api', remote: '/workspace/api', ignore: ['*.log'] }],
    ports: [{ name: 'http', port: 3000 }, { name: 'debug', port: 9229 }],
    caches: [
      { path: '/workspace/api/node_modules', size: '5Gi' },
      { path: '/home/dev/.npm', size: '2Gi', name: 'npm' },
    ],
    env: [{ name: 'NODE_ENV', value: 'development' }, { name: 'npm_config_cache', value: '/home/dev/.npm' }],
    resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } },
  });
  const fullstack = new DevEnvironment(web, 'fullstack', {
    name: 'fullstack',
    owner: 'bob@example.com',
    image: 'golang:1.23-bookworm',
    workingDir: '/src/server',
    resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } },
  });
  fullstack.addSyncFolder({ local: 'examples/sources/web', remote: '/src/web' });
  fullstack.addSyncFolder({ local: 'examples/sources/server', remote: '/src/server' });
  fullstack.addPort({ name: 'vite', port: 5173 });
  fullstack.addPort({ name: 'http', port: 8080 });
  fullstack.addCache({ path: '/home/dev/go', size: '10Gi', name: 'gomod' });
  webTeam.addEnvironment(api);
  webTeam.addEnvironment(fullstack);

  const data = new Chart(app, 'team-data', { namespace: 'team-data' });
  // Personal isolation (the default): carol's environments live in a namespace of her own, where the
  // data leads may only read. The team's quota is the total; each personal namespace gets personalQuota.
  const dataTeam = new TeamNamespace(data, 'team', {
    team: 'data',
    namespace: 'team-data',
    members: [{ user: 'carol@example.com', role: 'developer' }, { group: 'data-leads', role: 'admin' }],
    quota: { cpu: '4', memory: '8Gi', storage: '50Gi', pods: 10, persistentVolumeClaims: 10 },
    personalQuota: { cpu: '2', memory: '4Gi', storage: '20Gi', pods: 4, persistentVolumeClaims: 4 },
    network: { allow: [HTTPS_OUT] },
  });
  // The Secret `worker-db` lives beside it: carol creates it in her namespace (her role there has Secrets).
  const worker = new DevEnvironment(data, 'worker', {
    name: 'worker',
    namespace: dataTeam.namespaceFor('carol@example.com'),
    owner: 'carol@example.com',
    image: 'python:3.12-slim-bookworm',
    command: ['sh', '-c', 'pip install -r requirements.txt && exec python worker.py'],
    sync: [{ local: 'examples/sources/worker', remote: '/srv/worker', ignore: ['__pycache__/', '*.pyc'] }],
    caches: [{ path: '/home/dev/.cache/pip', size: '3Gi', name: 'pip' }],
    env: [
      { name: 'QUEUE', value: 'jobs' },
      { name: 'PIP_CACHE_DIR', value: '/home/dev/.cache/pip' },
      { name: 'DATABASE_URL', secretKeyRef: { name: 'worker-db', key: 'url' } },
    ],
    resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
  });
  dataTeam.addEnvironment(worker);

  // The application as its team already writes it with cdk8s-plus...
  // `kubectl apply -f dist/` reads files in name order: web-shop.k8s.yaml comes after team-web's namespace.
  const shopChart = new Chart(app, 'web-shop', { namespace: 'team-web' });
  const config = new kplus.ConfigMap(shopChart, 'config', { metadata: { name: 'shop-config' }, data: { 'settings.yaml': 'currency: EUR\n' } });
  const account = new kplus.ServiceAccount(shopChart, 'account', { metadata: { name: 'shop' } });
  const shop = new kplus.Deployment(shopChart, 'shop', {
    metadata: { name: 'shop' },
    replicas: 3,
    serviceAccount: account,
    containers: [{
      name: 'shop',
      image: 'registry.example.com/shop:1.4.2',
      portNumber: 8080,
      envVariables: { LOG_LEVEL: kplus.EnvValue.fromValue('info') },
      readiness: kplus.Probe.fromHttpGet('/healthz', { port: 8080, periodSeconds: Duration.seconds(5) }),
      volumeMounts: [{ path: '/etc/shop', volume: kplus.Volume.fromConfigMap(shopChart, 'config-volume', config) }],
    }],
  });
  shop.exposeViaService({ name: 'shop', ports: [{ port: 80, targetPort: 8080 }] });
  // The team runs it under Pod Security "restricted"; cdk8s-plus has no field for these two, so patch them.
  ApiObject.of(shop).addJsonPatch(
    JsonPatch.add('/spec/template/spec/securityContext/seccompProfile', { type: 'RuntimeDefault' }),
    JsonPatch.add('/spec/template/spec/containers/0/securityContext/capabilities', { drop: ['ALL'] }),
  );
  // ...and its development twin: same env, config and service account; dev image, no probes, one replica.
  // Replace mode: the Service `shop` now reaches the twin only (the original is written at replicas 0).
  const shopDev = DevEnvironment.fromDeployment(shopChart, 'shop-dev', shop, {
    mode: 'replace',
    owner: 'alice@example.com',
    image: 'node:20-bookworm',
    sync: [{ local: 'examples/sources/api', remote: '/app' }],
    caches: [{ path: '/app/node_modules', size: '5Gi' }],
  });
  webTeam.addEnvironment(shopDev);

  return app;
}

/**
 * Synthesizes into a temporary folder beside `outdir`, then moves the files in: a failed synth
 * leaves dist/ as it was, never half written.
 */
export function synthesize(outdir: string): string[] {
  const parent = path.dirname(path.resolve(outdir));
  fs.mkdirSync(parent, { recursive: true });
  const staging = fs.mkdtempSync(path.join(parent, '.kubedev-synth-'));
  try {
    buildApp({ outdir: staging }).synth();
    fs.mkdirSync(outdir, { recursive: true });
    const files = fs.readdirSync(staging).sort();
    for (const f of files) fs.renameSync(path.join(staging, f), path.join(outdir, f));
    return files.map((f) => path.join(outdir, f));
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const outdir = process.env.CDK8S_OUTDIR ?? 'dist';
  const started = process.hrtime.bigint();
  try {
    const files = synthesize(outdir);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    for (const f of files) console.log(`wrote ${f}`);
    console.log(`synthesized ${files.length} files in ${ms.toFixed(0)} ms`);
  } catch (e) {
    process.stderr.write(`synth failed, nothing written to ${outdir}/:\n${(e as Error).message}\n`);
    process.exitCode = 2;
  }
}

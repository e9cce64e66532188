import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiObject, App, Chart, JsonPatch, Testing } from 'cdk8s';
import { testApp, testChart } from './support/cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { scaledDownOriginal } from '../lib/takeover';
import { DevEnvironment } from '../constructs';
import { DevEnvironmentSpec, KubeObject, renderDevEnvironment } from '../lib';

const spec: DevEnvironmentSpec = {
  name: 'api',
  namespace: 'team-web',
  owner: 'alice@example.com',
  image: 'node:20',
  sync: [{ local: 'api', remote: '/workspace/api' }],
  ports: [{ name: 'http', port: 3000 }],
  caches: [{ path: '/workspace/api/node_modules', size: '5Gi' }],
  env: [{ name: 'NODE_ENV', value: 'development' }],
};

const sortByName = (objects: KubeObject[]) => [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));

describe('DevEnvironment construct', () => {
  test('synthesizes exactly what lib renders', () => {
    const chart = testChart();
    new DevEnvironment(chart, 'api', spec);
    expect(sortByName(Testing.synth(chart))).toEqual(sortByName(renderDevEnvironment(spec)));
  });

  test('mutators after construction shape the output like props do', () => {
    const chart = testChart();
    const env = new DevEnvironment(chart, 'api', { name: 'api', namespace: 'team-web', owner: 'alice@example.com', image: 'node:20' });
    env.addSyncFolder({ local: 'api', remote: '/workspace/api' });
    env.addPort({ name: 'http', port: 3000 });
    env.addCache({ path: '/workspace/api/node_modules', size: '5Gi' });
    env.addEnv({ name: 'NODE_ENV', value: 'development' });
    expect(sortByName(Testing.synth(chart))).toEqual(sortByName(renderDevEnvironment(spec)));
  });

  test("takes the chart's namespace when none is given", () => {
    const app = testApp();
    const chart = new Chart(app, 'c', { namespace: 'from-chart' });
    const env = new DevEnvironment(chart, 'api', { name: 'api', owner: 'a', image: 'i' });
    expect(env.namespace).toBe('from-chart');
    expect(Testing.synth(chart).every((o) => o.metadata.namespace === 'from-chart')).toBe(true);
  });

  test("the StatefulSet has id 'Resource', so addJsonPatch works as an escape hatch", () => {
    const chart = testChart();
    const env = new DevEnvironment(chart, 'api', spec);
    expect(ApiObject.of(env)).toBe(env.apiObject);
    env.apiObject.addJsonPatch(JsonPatch.add('/spec/template/spec/priorityClassName', 'dev'));
    const sts = Testing.synth(chart).find((o) => o.kind === 'StatefulSet');
    expect(sts.spec.template.spec.priorityClassName).toBe('dev');
  });

  test('exposes the attach record', () => {
    const env = new DevEnvironment(testChart(), 'api', spec);
    expect(env.attachRecord.pod).toBe('api-0');
    expect(env.attachRecord.folders[0].ignore).toEqual(['/node_modules/']);
  });

  test('synth lists every problem of every environment and writes nothing', () => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-invalid-'));
    const app = new App({ outdir });
    const chart = new Chart(app, 'c', { namespace: 'team' });
    new DevEnvironment(chart, 'one', { name: 'One', owner: 'a', image: '' });
    const two = new DevEnvironment(chart, 'two', { name: 'two', owner: 'a', image: 'i' });
    two.addPort({ name: 'ssh', port: 2222 });
    expect(() => app.synth()).toThrow(
      [
        'Validation failed with the following errors:',
        "  [c/one] DevEnvironment 'One': name is not a DNS-1123 label of at most 52 characters (got 'One'). Use lowercase letters, digits and '-', starting and ending with a letter or digit.",
        "  [c/one] DevEnvironment 'One': image is missing (got ''). Set image to the dev container's image, e.g. 'node:20'.",
        "  [c/two] DevEnvironment 'two': port 'ssh' collides with the sync sidecar's SSH port (got 2222). Use another port, or move the sidecar with sidecar.port.",
      ].join('\n'),
    );
    expect(fs.readdirSync(outdir)).toEqual([]);
    fs.rmSync(outdir, { recursive: true, force: true });
  });
});

describe('DevEnvironment.fromDeployment (dev mode)', () => {
  function shopChart() {
    const chart = testChart();
    const config = new kplus.ConfigMap(chart, 'config', { metadata: { name: 'shop-config' }, data: { a: 'b' } });
    const sa = new kplus.ServiceAccount(chart, 'sa', { metadata: { name: 'shop' } });
    const shop = new kplus.Deployment(chart, 'shop', {
      metadata: { name: 'shop', namespace: 'team-web' },
      replicas: 3,
      serviceAccount: sa,
      podMetadata: { labels: { app: 'shop' } },
      containers: [{
        name: 'shop',
        image: 'registry.example.com/shop:1',
        portNumber: 8080,
        envVariables: { LOG_LEVEL: kplus.EnvValue.fromValue('info') },
        liveness: kplus.Probe.fromHttpGet('/healthz'),
        volumeMounts: [{ path: '/etc/shop', volume: kplus.Volume.fromConfigMap(chart, 'cv', config) }],
      }],
    });
    return { chart, shop };
  }

  test('keeps env, config mounts, service account and labels; swaps image, command, probes and replicas', () => {
    const { chart, shop } = shopChart();
    DevEnvironment.fromDeployment(chart, 'twin', shop, { owner: 'alice@example.com', image: 'node:20' });
    const out = Testing.synth(chart);
    const twin = out.find((o) => o.kind === 'StatefulSet');
    expect(twin.metadata.name).toBe('shop-dev');
    expect(twin.metadata.namespace).toBe('team-web');
    expect(twin.spec.replicas).toBe(1);
    const pod = twin.spec.template.spec;
    expect(pod.serviceAccountName).toBe('shop');
    expect(twin.spec.template.metadata.labels).toMatchObject({ app: 'shop', 'kubedev.io/environment': 'shop-dev' });
    const dev = pod.containers[0];
    expect(dev.image).toBe('node:20');
    expect(dev.command).toEqual(['/bin/sh', '/etc/kubedev/supervisor/supervisor.sh']);
    expect(dev.env).toEqual([{ name: 'LOG_LEVEL', value: 'info' }]);
    expect(dev.ports).toEqual([{ name: 'port-8080', containerPort: 8080, protocol: 'TCP' }]);
    expect(dev.livenessProbe).toBeUndefined();
    expect(dev.readinessProbe).toBeUndefined();
    expect(dev.startupProbe).toBeUndefined();
    expect(dev.volumeMounts).toContainEqual({ name: 'configmap-shop-config', mountPath: '/etc/shop' });
    expect(pod.volumes).toContainEqual({ name: 'configmap-shop-config', configMap: { name: 'shop-config' } });
    expect(pod.containers.map((c: { name: string }) => c.name)).toEqual(['dev', 'sync']);
  });

  test('side-by-side leaves the original untouched', () => {
    const { chart: before } = shopChart();
    const original = Testing.synth(before).find((o) => o.kind === 'Deployment');
    const { chart, shop } = shopChart();
    DevEnvironment.fromDeployment(chart, 'twin', shop, { owner: 'alice@example.com', mode: 'side-by-side' });
    expect(Testing.synth(chart).find((o) => o.kind === 'Deployment')).toEqual(original);
  });

  test("replace (the default) writes the original in the same app as lib's scaledDownOriginal(): replicas 0", () => {
    const { chart: before } = shopChart();
    const original = Testing.synth(before).find((o) => o.kind === 'Deployment');
    const { chart, shop } = shopChart();
    DevEnvironment.fromDeployment(chart, 'twin', shop, { owner: 'alice@example.com' });
    const out = Testing.synth(chart);
    expect(out.find((o) => o.kind === 'Deployment')).toEqual(scaledDownOriginal(original, 'shop-dev'));
    const twin = out.find((o) => o.kind === 'StatefulSet');
    // The output scales it, so `kubedev up` has nothing to take over.
    expect(JSON.parse(twin.metadata.annotations['kubedev.io/attach']).takeOver).toBeUndefined();
    expect(twin.metadata.annotations).toMatchObject({ 'kubedev.io/twin-of': 'Deployment/shop', 'kubedev.io/twin-mode': 'replace' });
  });

  test('reads the original at synthesis time, so later changes carry over', () => {
    const { chart, shop } = shopChart();
    DevEnvironment.fromDeployment(chart, 'twin', shop, { owner: 'alice@example.com' });
    shop.containers[0].env.addVariable('LATE', kplus.EnvValue.fromValue('yes'));
    const twin = Testing.synth(chart).find((o) => o.kind === 'StatefulSet');
    expect(twin.spec.template.spec.containers[0].env).toContainEqual({ name: 'LATE', value: 'yes' });
    expect(twin.spec.template.spec.containers[0].image).toBe('registry.example.com/shop:1');
  });

  test('accepts a plain Deployment object and names a missing container', () => {
    const chart = testChart();
    const plainDeployment = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'x' },
      spec: { selector: {}, template: { spec: { containers: [{ name: 'web', image: 'nginx' }] } } },
    };
    DevEnvironment.fromDeployment(chart, 'ok', plainDeployment, { owner: 'a' });
    expect(Testing.synth(chart).find((o) => o.kind === 'StatefulSet').metadata.name).toBe('web-dev');
    const other = testChart();
    const env = DevEnvironment.fromDeployment(other, 'bad', plainDeployment, { owner: 'a', container: 'api' });
    expect(() => env.toSpec()).toThrow("DevMode 'web': container not found (got 'api'). Name one of its containers: 'web'.");
  });
});

describe('DevEnvironment dev process', () => {
  test('addOnSync and addReverse equal the same props, and render as lib does', () => {
    const spec = {
      name: 'web', namespace: 'team-web', owner: 'alice', image: 'node:20', command: ['node', 'server.js'],
      onSync: [{ paths: ['package.json'], run: 'npm ci' }, { paths: ['*.js'], restart: true }], reverse: [{ remote: 9229 }],
    };
    const a = testChart();
    new DevEnvironment(a, 'web', spec);
    const b = testChart();
    const env = new DevEnvironment(b, 'web', { ...spec, onSync: undefined, reverse: undefined });
    env.addOnSync({ paths: ['package.json'], run: 'npm ci' });
    env.addOnSync({ paths: ['*.js'], restart: true });
    env.addReverse({ remote: 9229 });
    expect(Testing.synth(b)).toEqual(Testing.synth(a));
    expect(Testing.synth(a)).toEqual(renderDevEnvironment(spec));
    expect(env.attachRecord.hooks).toEqual([{ paths: ['package.json'], run: 'npm ci' }, { paths: ['*.js'], restart: true }]);
  });

  test('a bad hook is a validation error of the chart', () => {
    const chart = testChart();
    const env = new DevEnvironment(chart, 'web', { name: 'web', namespace: 'team-web', owner: 'alice', image: 'node:20' });
    env.addOnSync({ paths: ['*.js'], restart: true });
    expect(env.node.validate()).toEqual([
      "DevEnvironment 'web': onSync #1 restarts the dev process, but no command is declared (got true). Declare command (the dev process), or use run instead of restart.",
    ]);
  });
});

/** The example cdk8s app's two teams, one per isolation mode: their developers own the example environments. */
import * as os from 'node:os';
import * as path from 'node:path';
import { Chart } from 'cdk8s';
import { buildApp } from '../examples/main';
import { KubeObject } from '../lib/k8s';
import { personalNamespaceName } from '../lib/team-namespace';
import { validateWithKubernetesModels } from './support/team-models';

const app = buildApp({ outdir: path.join(os.tmpdir(), 'kubedev-examples-unused') });
const charts = new Map(app.node.children.filter((c): c is Chart => c instanceof Chart).map((c) => [c.node.id, c.toJson() as KubeObject[]]));
const all = [...charts.values()].flat();
const find = (kind: string, name: string, namespace?: string) => all.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
const CAROL = personalNamespaceName('data', 'carol@example.com');

test('the app validates (team and environment checks included)', () => {
  expect(app.node.findAll().flatMap((c) => c.node.validate())).toEqual([]);
});

test('two team namespaces, each first in its chart, enforcing Pod Security "restricted"', () => {
  for (const [chart, ns] of [['team-web', 'team-web'], ['team-data', 'team-data']]) {
    const first = charts.get(chart)![0];
    expect([first.kind, first.metadata.name]).toEqual(['Namespace', ns]);
    expect(first.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
  }
});

test("each developer may exec and port-forward into their own environments' pods only", () => {
  const pods = (role: string, namespace: string) =>
    (find('Role', role, namespace)!.rules as { resources: string[]; resourceNames?: string[] }[]).filter((r) => r.resources[0].startsWith('pods/')).map((r) => [r.resources[0], r.resourceNames]);
  expect(pods('web-attach-alice-example-com', 'team-web')).toEqual([['pods/exec', ['api-0', 'shop-dev-0']], ['pods/portforward', ['api-0', 'shop-dev-0']]]);
  expect(pods('web-attach-bob-example-com', 'team-web')).toEqual([['pods/exec', ['fullstack-0']], ['pods/portforward', ['fullstack-0']]]);
  expect(pods('data-attach-carol-example-com', CAROL)).toEqual([['pods/exec', ['worker-0']], ['pods/portforward', ['worker-0']]]);
  // The environments those names point at exist, as StatefulSets with one replica.
  for (const env of ['api', 'shop-dev', 'fullstack', 'worker']) expect((find('StatefulSet', env)!.spec as { replicas: number }).replicas).toBe(1);
});

test('every team object validates with kubernetes-models', () => {
  const teamObjects = all.filter((o) => o.metadata.labels?.['kubedev.io/team']);
  // team-web (team mode) 18; team-data (personal) 10 in team-data + 11 in carol's namespace.
  expect(teamObjects).toHaveLength(18 + 10 + 11);
  for (const o of teamObjects) validateWithKubernetesModels(o);
});

test("team-data is personal: carol's worker runs in her namespace, which its chart applies first", () => {
  expect(CAROL).toBe('data-carol-example-com-e0d47c');
  expect(find('Namespace', 'team-web')!.metadata.labels?.['kubedev.io/isolation']).toBe('team');
  expect(find('Namespace', 'team-data')!.metadata.labels?.['kubedev.io/isolation']).toBe('personal');
  expect(find('Namespace', CAROL)!.metadata).toMatchObject({ labels: { 'kubedev.io/isolation': 'personal' }, annotations: { 'kubedev.io/owner': 'carol@example.com' } });
  expect(find('StatefulSet', 'worker')!.metadata.namespace).toBe(CAROL);
  const data = charts.get('team-data')!;
  const at = (kind: string, name: string) => data.findIndex((o) => o.kind === kind && o.metadata.name === name);
  for (const name of ['worker', 'worker-workspace', 'worker-sshd']) {
    const kind = name === 'worker' ? 'StatefulSet' : name.endsWith('sshd') ? 'ConfigMap' : 'PersistentVolumeClaim';
    expect([name, at(kind, name) > at('Namespace', CAROL)]).toEqual([name, true]);
  }
});

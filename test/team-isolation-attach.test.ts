/**
 * `kubedev keys` and the attach record follow an environment into its owner's personal namespace
 * with nothing new: the synthesized example's record names the namespace, `keys --apply` applies the
 * Secrets there, and the Roles in the same file let the owner (and only the owner) do both.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseAllDocuments } from 'yaml';
import { synthesize } from '../examples/main';
import { KubeObject } from '../lib/k8s';
import { PolicyRule } from '../lib/rbac';
import { personalNamespaceName } from '../lib/team-namespace';
import { runKeys } from '../sync/cli/keys';
import { loadTarget, readObjects } from '../sync/attach/record';
import { makeFakeKubectl } from './support/fake-kubectl';

const CAROL = personalNamespaceName('data', 'carol@example.com');
let tmp: string;
let file: string;
let saved: NodeJS.ProcessEnv;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-isolation-'));
  synthesize(path.join(tmp, 'dist'));
  file = path.join(tmp, 'dist', 'team-data.k8s.yaml');
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

beforeEach(() => {
  saved = { ...process.env };
  process.env.XDG_CONFIG_HOME = path.join(tmp, 'config');
  process.env.HOME = path.join(tmp, 'home');
});

afterEach(() => {
  process.env = saved;
});

test("the attach record in the synthesized file names the owner's personal namespace", async () => {
  const { record } = await loadTarget({ env: file, name: 'worker' });
  expect(record).toMatchObject({ name: 'worker', namespace: CAROL, pod: 'worker-0' });
});

test("the owner's Roles there allow what keys and up do; a teammate's allow none of it", () => {
  const objects = readObjects(file).filter((o) => o.metadata.namespace === CAROL);
  const rules = (name: string) => (objects.find((o: KubeObject) => o.kind === 'Role' && o.metadata.name === name)!.rules as PolicyRule[]);
  const grants = (rs: PolicyRule[], resource: string, verb: string, name?: string) =>
    rs.some((r) => r.resources.includes(resource) && r.verbs.includes(verb) && (r.resourceNames === undefined || (name !== undefined && r.resourceNames.includes(name))));
  const owner = [...rules('data-developer'), ...rules('data-attach-carol-example-com')];
  expect(grants(owner, 'secrets', 'create')).toBe(true); // keys --apply creates them itself
  expect(grants(owner, 'secrets', 'get', 'worker-ssh-host-keys')).toBe(true); // up checks them
  expect(grants(owner, 'pods/exec', 'create', 'worker-0')).toBe(true);
  expect(grants(owner, 'pods/portforward', 'create', 'worker-0')).toBe(true);
  const teammate = rules('data-viewer');
  for (const [res, verb] of [['secrets', 'get'], ['secrets', 'create'], ['pods/exec', 'create'], ['pods/portforward', 'create'], ['pods', 'create']]) {
    expect([res, verb, grants(teammate, res, verb, 'worker-0')]).toEqual([res, verb, false]);
  }
  const viewerBinding = objects.find((o) => o.kind === 'RoleBinding' && o.metadata.name === 'data-viewer')!;
  expect(viewerBinding.subjects).toEqual([{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'data-leads' }]);
});

test('kubedev keys --apply applies the two Secrets into the personal namespace', async () => {
  const fake = makeFakeKubectl();
  try {
    Object.assign(process.env, fake.env);
    const out = new PassThrough();
    const err = new PassThrough();
    await runKeys({ env: file, name: 'worker', apply: true }, { stdout: out, stderr: err });
    const apply = fake.calls().find((c) => c.args.includes('apply'))!;
    expect(apply.args.slice(0, 3)).toEqual(['apply', '-n', CAROL]);
    const secrets = parseAllDocuments(apply.stdin).map((d) => d.toJS() as KubeObject);
    expect(secrets.map((s) => `${s.kind}/${s.metadata.namespace}/${s.metadata.name}`)).toEqual([
      `Secret/${CAROL}/worker-ssh-host-keys`,
      `Secret/${CAROL}/worker-ssh-authorized-keys`,
    ]);
  } finally {
    fake.remove();
  }
});

/**
 * The ready Pulumi program in stacks/team-namespaces/: its sample stack config, run under mocks as
 * `pulumi up` would run index.ts, and its config errors.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as pulumi from '@pulumi/pulumi';
import YAML from 'yaml';
import { TeamNamespaceSpec, renderTeamNamespace } from '../lib/team-namespace';
import { Registered, installMocks, promiseOf } from './support/team-pulumi';

const DIR = path.join(__dirname, '..', 'stacks', 'team-namespaces');
const PROJECT = 'kubedev-team-namespaces';
const KEY = `${PROJECT}:teams`;
const sample = YAML.parse(fs.readFileSync(path.join(DIR, 'Pulumi.dev.yaml'), 'utf8')).config[KEY] as TeamNamespaceSpec[];

let registered: Registered[];
let program: typeof import('../stacks/team-namespaces/program');
let index: typeof import('../stacks/team-namespaces/index');

beforeAll(async () => {
  registered = await installMocks(PROJECT, 'dev', { [KEY]: JSON.stringify(sample) });
  // Import after the mocks: this runs the program.
  index = await import('../stacks/team-namespaces/index');
  program = await import('../stacks/team-namespaces/program');
  await promiseOf(index.environments);
});

describe('Pulumi.yaml and Pulumi.dev.yaml', () => {
  test('a nodejs TypeScript project whose name is the config namespace', () => {
    const project = YAML.parse(fs.readFileSync(path.join(DIR, 'Pulumi.yaml'), 'utf8'));
    expect(project).toMatchObject({ name: PROJECT, runtime: { name: 'nodejs', options: { typescript: true } }, main: 'index.ts' });
  });

  test('the sample stack defines two valid teams', () => {
    expect(sample.map((t) => t.team)).toEqual(['payments', 'search']);
    for (const t of sample) expect(() => renderTeamNamespace(t)).not.toThrow();
  });
});

describe('the program under mocks', () => {
  test('one TeamNamespace per team, one DevEnvironment per environment', () => {
    const components = registered.filter((r) => !r.custom).map((r) => `${r.type} ${r.name}`).sort();
    expect(components).toEqual([
      'kubedev:index:DevEnvironment payments-api',
      'kubedev:index:DevEnvironment payments-api-bob',
      'kubedev:index:DevEnvironment search-indexer',
      'kubedev:index:TeamNamespace payments',
      'kubedev:index:TeamNamespace search',
    ]);
  });

  test('every child is a typed Kubernetes resource; counts per team match lib', () => {
    const custom = registered.filter((r) => r.custom);
    expect(custom.every((r) => r.type.startsWith('kubernetes:'))).toBe(true);
    const teamChildren = (team: string) => custom.filter((r) => r.name.startsWith(`${team}-`) && !/-(api|api-bob|indexer)-/.test(r.name));
    expect(teamChildren('payments')).toHaveLength(renderTeamNamespace(sample[0]).length);
    expect(teamChildren('search')).toHaveLength(renderTeamNamespace(sample[1]).length);
    expect(custom.filter((r) => r.type === 'kubernetes:apps/v1:StatefulSet').map((r) => r.name).sort()).toEqual([
      'payments-api-bob-statefulset', 'payments-api-statefulset', 'search-indexer-statefulset',
    ]);
    expect(custom.find((r) => r.name === 'search-indexer-statefulset')!.inputs).toMatchObject({ metadata: { name: 'indexer', namespace: 'search' } });
  });

  test('stack outputs: namespaces, CI service accounts, attach records', async () => {
    expect(await promiseOf(index.namespaces)).toEqual({ payments: 'team-payments', search: 'search' });
    expect(await promiseOf(index.serviceAccounts)).toEqual({ payments: ['deployer'], search: [] });
    const environments = await promiseOf(index.environments);
    expect(Object.keys(environments).sort()).toEqual(['payments-api', 'payments-api-bob', 'search-indexer']);
    // payments runs in personal mode: alice's environment lives in her namespace; search shares one.
    const alice = 'payments-alice-example-com-ff8d98';
    expect(environments['payments-api']).toMatchObject({ name: 'api', namespace: alice, pod: 'api-0' });
    expect(environments['search-indexer']).toMatchObject({ name: 'indexer', namespace: 'search', pod: 'indexer-0' });
    expect(await promiseOf(index.personalNamespaces)).toEqual({
      payments: { 'alice@example.com': alice, 'bob@example.com': 'payments-bob-example-com-5ff860' },
      search: {},
    });
  });
});

describe('bad config fails with InputPropertiesError naming the config key', () => {
  const read = (teams: unknown) => {
    pulumi.runtime.setAllConfig(teams === undefined ? {} : { [KEY]: typeof teams === 'string' ? teams : JSON.stringify(teams) });
    try {
      program.readTeamsConfig(new pulumi.Config());
    } catch (e) {
      if (!pulumi.InputPropertiesError.isInstance(e)) throw e;
      return e;
    }
    throw new Error('readTeamsConfig accepted bad config');
  };

  test('missing', () => {
    const e = read(undefined);
    expect(e.errors).toEqual([{ propertyPath: 'teams', reason: "Config key 'kubedev-team-namespaces:teams' is not set. Add a list of teams under 'config:' in Pulumi.<stack>.yaml (see Pulumi.dev.yaml)." }]);
    expect(e.message).toContain("Stack config 'kubedev-team-namespaces:teams' is invalid (1 problem)");
    // Pulumi's runner prints err.stack when there is one: bad config must read as a message, not a crash.
    expect(e.stack).toBeUndefined();
  });

  test('not JSON, not a list', () => {
    expect(read('{nope').errors[0].propertyPath).toBe('teams');
    expect(read('{nope').errors[0].reason).toMatch(/^Config key 'kubedev-team-namespaces:teams' is not valid JSON\/YAML/);
    expect(read({ team: 'a' }).errors[0].reason).toBe(`Config key 'kubedev-team-namespaces:teams' must be a non-empty list of teams (got {"team":"a"}). Write e.g. [{ team: 'payments', members: [...] }].`);
  });

  test('problems inside teams carry the full property path', () => {
    const e = read([
      sample[0],
      { ...sample[1], member: [], members: [{ user: 'carol@example.com', role: 'root' }] },
      { team: 'payments', namespace: 'search' },
    ]);
    expect(e.errors.map((x) => x.propertyPath)).toEqual(['teams[1].member', 'teams[1].members[0].role', 'teams[2].team']);
    expect(e.errors[0].reason).toBe("Config key 'kubedev-team-namespaces:teams': team 1 has an unknown field 'member'. Did you mean 'members'? Fields are: team, namespace, isolation, personalQuota, members, ci, quota, containerDefaults, network, podSecurity, environments, labels.");
    expect(e.errors[1].reason).toBe("Config key 'kubedev-team-namespaces:teams': TeamNamespace 'search': member 0 has an unknown role (got 'root'). Use one of 'developer', 'viewer', 'admin'.");
    expect(e.errors[2].reason).toBe("Config key 'kubedev-team-namespaces:teams': teams 0 and 2 are both named 'payments'. Give each team its own name.");
  });

  test('two teams in one namespace', () => {
    const e = read([{ team: 'a', namespace: 'shared' }, { team: 'b', namespace: 'shared' }]);
    expect(e.errors).toEqual([{ propertyPath: 'teams[1].namespace', reason: "Config key 'kubedev-team-namespaces:teams': teams 0 and 1 both use namespace 'shared'. Give each team its own namespace." }]);
  });

  test("a personal namespace that is another team's namespace", () => {
    const e = read([
      { team: 'web-shop' },
      { team: 'web', members: [{ user: 'shop', role: 'developer' }], environments: [{ name: 'api', owner: 'shop', image: 'node:20' }] },
    ]);
    expect(e.errors).toEqual([{
      propertyPath: 'teams[1].environments',
      reason: "Config key 'kubedev-team-namespaces:teams': the personal namespace 'web-shop' of 'shop' in team 1 is also a namespace of team 0. Rename one of the teams (or its namespace).",
    }]);
  });
});

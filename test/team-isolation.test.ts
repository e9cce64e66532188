/**
 * Personal isolation: namespace names (hostile member names included), who is bound to what in
 * whose namespace, the network policies between a team's namespaces, and the quota arithmetic.
 */
import { KubeObject } from '../lib/k8s';
import { PolicyRule } from '../lib/rbac';
import {
  TeamNamespaceSpec, formatExact, personalNamespaceName, personalNamespaces, renderTeamNamespace, teamNamespaceQuota, validateTeamNamespace,
} from '../lib/team-namespace';
import { PAYMENTS, PAYMENTS_PERSONAL, SEARCH } from './support/team-models';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ALICE = personalNamespaceName('payments', 'alice@example.com');
const BOB = personalNamespaceName('payments', 'bob@example.com');

describe('personalNamespaceName', () => {
  test('a member that is a DNS label keeps its name; anything else is sanitized and hashed, deterministically', () => {
    expect(personalNamespaceName('web', 'dana')).toBe('web-dana');
    expect(ALICE).toBe('payments-alice-example-com-ff8d98');
    expect(personalNamespaceName('payments', 'alice@example.com')).toBe(ALICE);
    // The hash is of the member only: the same person has the same suffix in every team.
    expect(personalNamespaceName('web', 'alice@example.com')).toBe('web-alice-example-com-ff8d98');
  });

  test('uppercase, dots and plus addressing give distinct names', () => {
    const names = ['alice@example.com', 'Alice@example.com', 'ALICE@EXAMPLE.COM', 'alice.example.com', 'alice+dev@example.com', 'alice-example-com'].map((m) => personalNamespaceName('web', m));
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(DNS_LABEL);
    expect(names[5]).toBe('web-alice-example-com'); // a DNS label already: no hash
  });

  test('very long members and the longest team still give a DNS label of at most 63 characters', () => {
    const team = 'a'.repeat(40);
    const long = `${'very.long.first.name.'.repeat(10)}@a-company-with-a-long-domain.example.com`;
    for (const [t, m] of [['web', long], [team, long], [team, 'x@y'], [team, '@@@'], ['web', 'system:serviceaccount:ci:deployer'], ['web', 'Jürgen Groß']]) {
      const n = personalNamespaceName(t, m);
      expect([m, n.length <= 63 && DNS_LABEL.test(n)]).toEqual([m, true]);
      expect(n.startsWith(`${t}-`)).toBe(true);
    }
    // Two long members that share their first 60 characters still differ (the hash covers all of it).
    expect(personalNamespaceName(team, `${long}1`)).not.toBe(personalNamespaceName(team, `${long}2`));
  });

  test('two members that map to the same namespace are an error, not a shared namespace', () => {
    // A member named exactly like alice's hashed namespace suffix: a deliberate collision.
    const forged = ALICE.slice('payments-'.length);
    const spec: TeamNamespaceSpec = {
      team: 'payments',
      members: [{ user: 'alice@example.com', role: 'developer' }, { user: forged, role: 'developer' }],
      environments: [{ name: 'a', owner: 'alice@example.com', image: 'x' }, { name: 'b', owner: forged, image: 'x' }],
    };
    expect(validateTeamNamespace(spec)).toEqual([
      `TeamNamespace 'payments': members 'alice@example.com' and '${forged}' would share the personal namespace '${ALICE}' (got '${ALICE}'). Let only one of them own environments, or use isolation: 'team'.`,
    ]);
    // A user and a ServiceAccount of the same name.
    const twins: TeamNamespaceSpec = {
      team: 'web',
      members: [{ user: 'bot', role: 'developer' }, { serviceAccount: 'bot', serviceAccountNamespace: 'ci', role: 'developer' }],
      environments: [{ name: 'a', owner: 'bot', image: 'x' }, { name: 'b', owner: 'system:serviceaccount:ci:bot', image: 'x' }],
    };
    expect(validateTeamNamespace(twins)).toEqual([
      "TeamNamespace 'web': members 'bot' and 'bot' would share the personal namespace 'web-bot' (got 'web-bot'). Let only one of them own environments, or use isolation: 'team'.",
    ]);
  });

  test('a personal namespace may not be the team namespace', () => {
    const spec: TeamNamespaceSpec = { team: 'web', namespace: 'web-dana', members: [{ user: 'dana', role: 'developer' }], environments: [{ name: 'a', owner: 'dana', image: 'x' }] };
    expect(validateTeamNamespace(spec)).toEqual([
      "TeamNamespace 'web': the personal namespace of 'dana' would be the team namespace (got 'web-dana'). Set namespace to another name, e.g. 'team-web'.",
    ]);
  });
});

const bindings = (objects: KubeObject[]) =>
  Object.fromEntries(objects.filter((o) => o.kind === 'RoleBinding').map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, (o.subjects as { name: string }[]).map((s) => s.name)]));

describe('RoleBindings, per mode', () => {
  test('team mode: everyone in the one namespace; each owner alone in their attach Role', () => {
    expect(bindings(renderTeamNamespace(PAYMENTS))).toEqual({
      'team-payments/payments-developer': ['alice@example.com', 'bob@example.com'],
      'team-payments/payments-viewer': ['auditors', 'dashboard'],
      'team-payments/payments-admin': ['payments-leads'],
      'team-payments/payments-ci': ['deployer'],
      'team-payments/payments-attach-alice-example-com': ['alice@example.com'],
      'team-payments/payments-attach-bob-example-com': ['bob@example.com'],
    });
  });

  test('personal mode: the owner develops in their namespace, every other member only views it, CI applies', () => {
    expect(bindings(renderTeamNamespace(PAYMENTS_PERSONAL))).toEqual({
      'team-payments/payments-developer': ['alice@example.com', 'bob@example.com'],
      'team-payments/payments-viewer': ['auditors', 'dashboard'],
      'team-payments/payments-admin': ['payments-leads'],
      'team-payments/payments-ci': ['deployer'],
      [`${ALICE}/payments-developer`]: ['alice@example.com'],
      [`${ALICE}/payments-viewer`]: ['bob@example.com', 'payments-leads', 'auditors', 'dashboard'],
      [`${ALICE}/payments-ci`]: ['deployer'],
      [`${ALICE}/payments-attach-alice-example-com`]: ['alice@example.com'],
      [`${BOB}/payments-developer`]: ['bob@example.com'],
      [`${BOB}/payments-viewer`]: ['alice@example.com', 'payments-leads', 'auditors', 'dashboard'],
      [`${BOB}/payments-ci`]: ['deployer'],
      [`${BOB}/payments-attach-bob-example-com`]: ['bob@example.com'],
    });
    // The CI ServiceAccount lives in the team namespace and is bound from there.
    const ci = renderTeamNamespace(PAYMENTS_PERSONAL).find((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ALICE && o.metadata.name === 'payments-ci')!;
    expect(ci.subjects).toEqual([{ kind: 'ServiceAccount', name: 'deployer', namespace: 'team-payments' }]);
  });
});

/** A team of four owners: two developers, an admin and a ServiceAccount, one with an e-mail in capitals. */
const FOUR: TeamNamespaceSpec = {
  team: 'four',
  members: [
    { user: 'ann@example.com', role: 'developer' },
    { user: 'Ben@Example.com', role: 'developer' },
    { group: 'leads', role: 'admin' },
    { serviceAccount: 'bot', role: 'developer' },
    { group: 'everyone', role: 'viewer' },
  ],
  quota: { cpu: '16', memory: '32Gi', storage: '400Gi', pods: 40, persistentVolumeClaims: 60 },
  ci: [{ name: 'deployer' }],
  environments: [
    { name: 'a', owner: 'ann@example.com', image: 'x' },
    { name: 'b', owner: 'Ben@Example.com', image: 'x' },
    { name: 'l', owner: 'leads', image: 'x' },
    { name: 's', owner: 'bot', image: 'x' },
    { name: 'a2', owner: 'ann@example.com', image: 'x' },
  ],
};

describe('every pair of owners in personal mode', () => {
  const READ = ['get', 'list', 'watch'];
  const subjectName = (s: { kind: string; name: string }) => s.name;

  test.each([
    ['payments', PAYMENTS_PERSONAL],
    ['search', SEARCH],
    ['four', FOUR],
  ])("%s: no Role bound to one owner grants anything but read in another's namespace", (_name, spec) => {
    const objects = renderTeamNamespace(spec);
    const spaces = personalNamespaces(spec);
    const roleRules = (ns: string, name: string) => objects.find((o) => o.kind === 'Role' && o.metadata.namespace === ns && o.metadata.name === name)!.rules as PolicyRule[];
    let pairs = 0;
    for (const mine of spaces) {
      for (const theirs of spaces) {
        if (mine === theirs) continue;
        pairs += 1;
        const me = mine.member.user ?? mine.member.group ?? mine.member.serviceAccount;
        const bound = objects.filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === theirs.name && (o.subjects as { kind: string; name: string }[]).map(subjectName).includes(me!));
        expect(bound.map((b) => b.metadata.name)).toEqual([`${spec.team}-viewer`]);
        for (const b of bound) {
          for (const r of roleRules(theirs.name, (b.roleRef as { name: string }).name)) {
            const verbs = r.resources.includes('pods/log') ? ['get'] : READ;
            expect([theirs.name, r.resources, r.verbs]).toEqual([theirs.name, r.resources, verbs]);
            expect(r.resources.filter((res) => ['secrets', 'pods/exec', 'pods/portforward', 'pods/attach', 'rolebindings'].includes(res))).toEqual([]);
          }
        }
      }
    }
    expect(pairs).toBe(spaces.length * (spaces.length - 1));
  });

  test('four owners: four personal namespaces, in first-seen order, holding their own environments', () => {
    expect(personalNamespaces(FOUR).map((p) => [p.name, p.environments.map((e) => e.name)])).toEqual([
      [personalNamespaceName('four', 'ann@example.com'), ['a', 'a2']],
      [personalNamespaceName('four', 'Ben@Example.com'), ['b']],
      ['four-leads', ['l']],
      ['four-bot', ['s']],
    ]);
    expect(validateTeamNamespace(FOUR)).toEqual([]);
  });
});

describe('network policies in personal mode', () => {
  const objects = renderTeamNamespace(PAYMENTS_PERSONAL);
  const policy = (ns: string, name: string) => objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.namespace === ns && o.metadata.name === name)!;
  const dns = {
    to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
    ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
  };
  const byName = (names: string[]) => ({ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: names }] } });

  test('the team namespace admits its own pods and the personal namespaces, by their API-server-set name', () => {
    expect(policy('team-payments', 'payments-isolate').spec).toEqual({
      podSelector: {},
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: {} }, byName([ALICE, BOB])] }],
      egress: [{ to: [{ podSelector: {} }] }, dns],
    });
  });

  test('a personal namespace admits only its own pods, and reaches its own pods, the team namespace and DNS', () => {
    for (const ns of [ALICE, BOB]) {
      expect(policy(ns, 'payments-isolate').spec).toEqual({
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: {} }] }],
        egress: [{ to: [{ podSelector: {} }, byName(['team-payments'])] }, dns],
      });
    }
  });

  test("the team's allowances apply in every one of its namespaces", () => {
    for (const ns of ['team-payments', ALICE, BOB]) expect(policy(ns, 'payments-allow-https-out').spec).toEqual(policy('team-payments', 'payments-allow-https-out').spec);
  });

  test('isolate: false renders no policy anywhere', () => {
    expect(renderTeamNamespace({ ...PAYMENTS_PERSONAL, network: { isolate: false } }).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });
});

describe('quotas in personal mode', () => {
  const hard = (spec: TeamNamespaceSpec, ns: string) =>
    (renderTeamNamespace(spec).find((o) => o.kind === 'ResourceQuota' && o.metadata.namespace === ns)!.spec as { hard: Record<string, string> }).hard;

  test('each personal namespace gets personalQuota; the team namespace what remains of the team quota', () => {
    const personal = { 'requests.cpu': '3', 'requests.memory': '6Gi', 'requests.storage': '60Gi', pods: '4', persistentvolumeclaims: '6' };
    expect(hard(PAYMENTS_PERSONAL, ALICE)).toEqual(personal);
    expect(hard(PAYMENTS_PERSONAL, BOB)).toEqual(personal);
    expect(hard(PAYMENTS_PERSONAL, 'team-payments')).toEqual({ 'requests.cpu': '2', 'requests.memory': '4Gi', 'requests.storage': '30Gi', pods: '6', persistentvolumeclaims: '8' });
    // Defaults: 8 CPU/16Gi/200Gi/20/30 less one personal namespace of 2/4Gi/50Gi/5/8.
    expect(hard(SEARCH, 'search')).toEqual({ 'requests.cpu': '6', 'requests.memory': '12Gi', 'requests.storage': '150Gi', pods: '15', persistentvolumeclaims: '22' });
    const odd = { ...PAYMENTS_PERSONAL, quota: { ...PAYMENTS_PERSONAL.quota, cpu: '6500m', memory: '12.5Gi', limitsMemory: '20Gi' }, personalQuota: { ...PAYMENTS_PERSONAL.personalQuota, cpu: '1250m', limitsMemory: '9Gi' } };
    expect(validateTeamNamespace(odd)).toEqual([]);
    expect(teamNamespaceQuota(odd)).toMatchObject({ cpu: '4', memory: '512Mi', limitsMemory: '2Gi' });
  });

  test('formatExact writes what remains without rounding', () => {
    expect([formatExact(2.5, 'cpu'), formatExact(0, 'cpu'), formatExact(1536 * 2 ** 20, 'bytes'), formatExact(1000, 'bytes'), formatExact(0, 'bytes')]).toEqual(['2500m', '0', '1536Mi', '1000', '0']);
  });

  test("personal quotas that, summed, exceed the team's are refused, with the exact message", () => {
    expect(validateTeamNamespace({ ...PAYMENTS_PERSONAL, quota: { ...PAYMENTS_PERSONAL.quota, cpu: '5', pods: 7 } })).toEqual([
      "TeamNamespace 'payments': quota.cpu cannot hold the quotas of 2 personal namespaces (2 × personalQuota.cpu '3' = '6') (got '5'). Raise quota.cpu to at least '6', or lower personalQuota.cpu.",
      "TeamNamespace 'payments': quota.pods cannot hold the quotas of 2 personal namespaces (2 × personalQuota.pods 4 = 8) (got 7). Raise quota.pods to at least 8, or lower personalQuota.pods.",
    ]);
  });

  test('a team limits quota needs a personal one', () => {
    expect(validateTeamNamespace({ ...PAYMENTS_PERSONAL, quota: { ...PAYMENTS_PERSONAL.quota, limitsCpu: '12' }, containerDefaults: { limit: { cpu: '1', memory: '1Gi' } } })).toEqual([
      "TeamNamespace 'payments': quota.limitsCpu bounds the team but personalQuota.limitsCpu is not set, so the personal namespaces would be unbounded (got nothing). Set personalQuota.limitsCpu, e.g. '4'.",
    ]);
  });

  test("an owner's environments must fit their personal namespace", () => {
    const spec = { ...PAYMENTS_PERSONAL, personalQuota: { ...PAYMENTS_PERSONAL.personalQuota, cpu: '1', persistentVolumeClaims: 2 } };
    expect(validateTeamNamespace(spec)).toEqual([
      `TeamNamespace 'payments': personalQuota.cpu (requests.cpu) cannot fit the environments' requests in the personal namespace '${ALICE}' of 'alice@example.com' (got '1'). The environments request 1200m CPU: raise personalQuota.cpu to at least '1200m', or lower their requests.`,
      `TeamNamespace 'payments': personalQuota.persistentVolumeClaims cannot fit the environments' volumes in the personal namespace '${ALICE}' of 'alice@example.com' (got 2). The environments claim 3 volumes: raise personalQuota.persistentVolumeClaims to at least 3.`,
    ]);
  });
});

describe('the isolation fields', () => {
  test('an unknown mode, and personalQuota in team mode, are refused', () => {
    expect(validateTeamNamespace({ ...SEARCH, isolation: 'shared' as never })).toEqual([
      "TeamNamespace 'search': isolation is not a mode kubedev knows (got 'shared'). Use 'personal' (a namespace per environment owner, the default) or 'team' (one shared namespace, for teams that trust each other).",
    ]);
    expect(validateTeamNamespace({ ...PAYMENTS, personalQuota: { cpu: '1' } })).toEqual([
      `TeamNamespace 'payments': personalQuota is set but isolation is 'team', which has no personal namespaces (got {"cpu":"1"}). Remove personalQuota, or set isolation to 'personal'.`,
    ]);
    expect(validateTeamNamespace({ ...SEARCH, personalQuota: { memory: 'lots', pods: -1 } })).toEqual([
      "TeamNamespace 'search': personalQuota.memory is not a Kubernetes quantity (got 'lots'). Write e.g. '4', '500m', '16Gi'.",
      "TeamNamespace 'search': personalQuota.pods is not a whole number (got -1). Write a count, e.g. 20.",
    ]);
  });

  test("an environment outside its owner's personal namespace is refused, naming the right one", () => {
    expect(validateTeamNamespace({ ...SEARCH, environments: [{ name: 'indexer', namespace: 'search', owner: 'carol@example.com', image: 'x' }] })).toEqual([
      "TeamNamespace 'search': environment 'indexer' is not in the personal namespace of its owner 'carol@example.com' (got 'search'). Set it to 'search-carol-example-com-e0d47c' (in cdk8s: namespace: team.namespaceFor('carol@example.com')), or leave it out of a plain spec.",
    ]);
  });

  test('personal mode, every object in apply order (golden)', () => {
    const objects = renderTeamNamespace(PAYMENTS_PERSONAL);
    expect(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name)).toEqual(['team-payments', ALICE, BOB]);
    // Each namespace's objects follow its Namespace.
    const firstIndex = (ns: string) => objects.findIndex((o) => o.metadata.namespace === ns);
    expect(firstIndex(ALICE)).toBeGreaterThan(objects.findIndex((o) => o.kind === 'Namespace' && o.metadata.name === ALICE));
    expect(objects).toMatchSnapshot();
  });
});

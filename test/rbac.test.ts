/**
 * Every Role the sample teams render in both isolation modes, walked rule by rule: the exact verbs on
 * the exact resources each role gets, and no '*' anywhere.
 */
import { KubeObject } from '../lib/k8s';
import { PolicyRule, attachRules, ciRules, hasWildcard } from '../lib/rbac';
import { personalNamespaceName, renderTeamNamespace } from '../lib/team-namespace';
import { PAYMENTS, PAYMENTS_PERSONAL, SEARCH } from './support/team-models';

const READ = 'get,list,watch';
const MANAGE = 'get,list,watch,create,update,patch,delete';

/** One line per (apiGroup, resource[, name]): its verbs. '' is the core group. */
function table(rules: readonly PolicyRule[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rules) {
    for (const g of r.apiGroups) {
      for (const res of r.resources) {
        const names = r.resourceNames ? `[${r.resourceNames.join(',')}]` : '';
        const key = `${g === '' ? 'core' : g} ${res}${names}`;
        if (out[key] !== undefined) throw new Error(`${key} appears in two rules`);
        out[key] = r.verbs.join(',');
      }
    }
  }
  return out;
}

const VIEWER = {
  'core configmaps': READ,
  'core endpoints': READ,
  'core events': READ,
  'core limitranges': READ,
  'core persistentvolumeclaims': READ,
  'core pods': READ,
  'core resourcequotas': READ,
  'core serviceaccounts': READ,
  'core services': READ,
  'core pods/log': 'get',
  'apps controllerrevisions': READ,
  'apps deployments': READ,
  'apps replicasets': READ,
  'apps statefulsets': READ,
  'batch cronjobs': READ,
  'batch jobs': READ,
  'events.k8s.io events': READ,
  'networking.k8s.io networkpolicies': READ,
};

const DEVELOPER = {
  'core configmaps': MANAGE,
  'core persistentvolumeclaims': MANAGE,
  'core pods': MANAGE,
  'core services': MANAGE,
  'core pods/log': 'get',
  'core endpoints': READ,
  'core events': READ,
  'core limitranges': READ,
  'core resourcequotas': READ,
  'core serviceaccounts': READ,
  'apps deployments': MANAGE,
  'apps statefulsets': MANAGE,
  'apps deployments/scale': 'get,update,patch',
  'apps statefulsets/scale': 'get,update,patch',
  'apps controllerrevisions': READ,
  'apps replicasets': READ,
  'batch cronjobs': MANAGE,
  'batch jobs': MANAGE,
  'events.k8s.io events': READ,
  'networking.k8s.io networkpolicies': READ,
};

const ADMIN = {
  ...DEVELOPER,
  'core secrets': MANAGE,
  'rbac.authorization.k8s.io rolebindings': MANAGE,
  'rbac.authorization.k8s.io roles': READ,
};

const CI = {
  'core configmaps': 'get,list,create,patch,delete',
  'core persistentvolumeclaims': 'get,list,create,patch,delete',
  'core services': 'get,list,create,patch,delete',
  'apps statefulsets': 'get,list,create,patch,delete',
};

/** A team namespace developer in team mode: the kinds environments render are read and create only. */
const SHARED_DEVELOPER = Object.fromEntries(
  Object.entries({
    ...DEVELOPER,
    'core configmaps': `${READ},create`,
    'core persistentvolumeclaims': `${READ},create`,
    'core services': `${READ},create`,
    'core pods': `${READ},create,delete`,
    'apps statefulsets': `${READ},create`,
  }).filter(([key]) => key !== 'apps statefulsets/scale'),
);

/** The owner in their personal namespace: the developer's rules and the namespace's Secrets. */
const PERSONAL_DEVELOPER = { ...DEVELOPER, 'core secrets': MANAGE };

const CHANGE = 'update,patch,delete';

/** Roles keyed `<namespace>/<name>`: personal namespaces repeat the team's Role names. */
const roles = (objects: KubeObject[]) => new Map(objects.filter((o) => o.kind === 'Role').map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o.rules as PolicyRule[]]));
const payments = roles(renderTeamNamespace(PAYMENTS));
const personal = roles(renderTeamNamespace(PAYMENTS_PERSONAL));
const search = roles(renderTeamNamespace(SEARCH));
const ALICE = personalNamespaceName('payments', 'alice@example.com');
const BOB = personalNamespaceName('payments', 'bob@example.com');
const CAROL = personalNamespaceName('search', 'carol@example.com');

const ATTACH_ALICE = {
  'core pods/exec[api-0,worker-0]': 'create,get',
  'core pods/portforward[api-0,worker-0]': 'create,get',
  'core secrets[api-ssh-authorized-keys,api-ssh-host-keys,worker-ssh-authorized-keys,worker-ssh-host-keys]': 'get,patch',
};
const ATTACH_BOB = {
  'core pods/exec[api-bob-0]': 'create,get',
  'core pods/portforward[api-bob-0]': 'create,get',
  'core secrets[api-bob-ssh-authorized-keys,api-bob-ssh-host-keys]': 'get,patch',
};

describe.each([
  // team mode: one namespace; owners alone change their environments' objects, by name.
  ['team-payments/payments-viewer', payments, VIEWER],
  ['team-payments/payments-developer', payments, SHARED_DEVELOPER],
  ['team-payments/payments-admin', payments, ADMIN],
  ['team-payments/payments-ci', payments, CI],
  ['team-payments/payments-attach-alice-example-com', payments, {
    ...ATTACH_ALICE,
    'core configmaps[api-sshd,worker-sshd]': CHANGE,
    'core persistentvolumeclaims[api-cache-home-dev-npm,api-workspace,worker-workspace]': CHANGE,
    'core services[api,worker]': CHANGE,
    'core pods[api-0,worker-0]': 'update,patch',
    'apps statefulsets[api,worker]': CHANGE,
    'apps statefulsets/scale[api,worker]': 'get,update,patch',
  }],
  ['team-payments/payments-attach-bob-example-com', payments, {
    ...ATTACH_BOB,
    'core configmaps[api-bob-sshd]': CHANGE,
    'core persistentvolumeclaims[api-bob-workspace]': CHANGE,
    'core services[api-bob]': CHANGE,
    'core pods[api-bob-0]': 'update,patch',
    'apps statefulsets[api-bob]': CHANGE,
    'apps statefulsets/scale[api-bob]': 'get,update,patch',
  }],
  // personal mode: the team namespace holds shared services; each owner's namespace is theirs.
  ['team-payments/payments-viewer', personal, VIEWER],
  ['team-payments/payments-developer', personal, DEVELOPER],
  ['team-payments/payments-admin', personal, ADMIN],
  ['team-payments/payments-ci', personal, CI],
  [`${ALICE}/payments-developer`, personal, PERSONAL_DEVELOPER],
  [`${ALICE}/payments-viewer`, personal, VIEWER],
  [`${ALICE}/payments-ci`, personal, CI],
  [`${ALICE}/payments-attach-alice-example-com`, personal, ATTACH_ALICE],
  [`${BOB}/payments-developer`, personal, PERSONAL_DEVELOPER],
  [`${BOB}/payments-viewer`, personal, VIEWER],
  [`${BOB}/payments-ci`, personal, CI],
  [`${BOB}/payments-attach-bob-example-com`, personal, ATTACH_BOB],
  ['search/search-viewer', search, VIEWER],
  ['search/search-developer', search, DEVELOPER],
  ['search/search-admin', search, ADMIN],
  [`${CAROL}/search-developer`, search, PERSONAL_DEVELOPER],
  [`${CAROL}/search-viewer`, search, VIEWER],
  [`${CAROL}/search-attach-carol-example-com`, search, {
    'core pods/exec[indexer-0]': 'create,get',
    'core pods/portforward[indexer-0]': 'create,get',
    'core secrets[indexer-ssh-authorized-keys,indexer-ssh-host-keys]': 'get,patch',
  }],
])('Role %s', (name, rendered, expected) => {
  const rules = rendered.get(name);

  test('exists', () => {
    expect(rules).toBeDefined();
  });

  test('grants exactly the expected verbs on exactly the expected resources', () => {
    expect(table(rules!)).toEqual(expected);
  });

  test("holds no '*' in verbs, resources, API groups or names", () => {
    for (const r of rules!) {
      for (const s of [...r.apiGroups, ...r.resources, ...r.verbs, ...(r.resourceNames ?? [])]) expect(s).not.toContain('*');
    }
    expect(hasWildcard(rules!)).toBe(false);
  });
});

describe('least privilege, across every Role rendered', () => {
  const all = [...payments.entries(), ...personal.entries(), ...search.entries()];

  test('the tables cover every Role the teams render (no unchecked Role)', () => {
    const inTeam = ['payments-admin', 'payments-ci', 'payments-developer', 'payments-viewer'];
    expect([...payments.keys()].sort()).toEqual([...inTeam, 'payments-attach-alice-example-com', 'payments-attach-bob-example-com'].map((n) => `team-payments/${n}`).sort());
    expect([...personal.keys()].sort()).toEqual([
      ...inTeam.map((n) => `team-payments/${n}`),
      ...['payments-attach-alice-example-com', 'payments-ci', 'payments-developer', 'payments-viewer'].map((n) => `${ALICE}/${n}`),
      ...['payments-attach-bob-example-com', 'payments-ci', 'payments-developer', 'payments-viewer'].map((n) => `${BOB}/${n}`),
    ].sort());
    expect([...search.keys()].sort()).toEqual(
      ['search/search-admin', 'search/search-developer', 'search/search-viewer', `${CAROL}/search-attach-carol-example-com`, `${CAROL}/search-developer`, `${CAROL}/search-viewer`].sort(),
    );
  });

  test('exec and port-forward appear only with resourceNames, and only in attach Roles', () => {
    for (const [name, rules] of all) {
      for (const r of rules) {
        if (r.resources.some((res) => ['pods/exec', 'pods/portforward', 'pods/attach', 'pods/proxy', 'pods/ephemeralcontainers'].includes(res))) {
          expect(name).toMatch(/-attach-/);
          expect(r.resources.every((res) => res === 'pods/exec' || res === 'pods/portforward')).toBe(true);
          expect(r.resourceNames?.length).toBeGreaterThan(0);
        }
      }
    }
  });

  test("Secrets: admins and owners in their own namespace manage them; attach Roles get/patch key Secrets by name; others none", () => {
    const ownNamespaces = [ALICE, BOB, CAROL];
    for (const [name, rules] of all) {
      const secretRules = rules.filter((r) => r.resources.includes('secrets'));
      if (name.endsWith('-admin') || (ownNamespaces.includes(name.split('/')[0]) && name.endsWith('-developer'))) {
        expect(secretRules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: MANAGE.split(',') }]);
      } else if (name.includes('-attach-')) {
        expect(secretRules).toHaveLength(1);
        expect(secretRules[0].verbs).toEqual(['get', 'patch']);
        expect(secretRules[0].resourceNames!.length).toBeGreaterThan(0);
        expect(secretRules[0].resourceNames!.every((n) => /-ssh-(host-keys|authorized-keys)$/.test(n))).toBe(true);
      } else {
        expect([name, secretRules]).toEqual([name, []]);
      }
      const touchesBindings = rules.some((r) => r.resources.includes('rolebindings'));
      expect([name, touchesBindings]).toEqual([name, name.endsWith('-admin')]);
      if (name.endsWith('-admin')) expect(name.split('/')[0]).not.toMatch(/^payments-|^search-/); // no admin Role in personal namespaces
    }
  });

  test('every rule with resourceNames names something (an empty list would mean everything)', () => {
    for (const [, rules] of all) for (const r of rules) if (r.resourceNames !== undefined) expect(r.resourceNames.length).toBeGreaterThan(0);
  });

  test('nothing cluster-scoped: only Roles and RoleBindings, never ClusterRole(Binding)', () => {
    const kinds = [PAYMENTS, PAYMENTS_PERSONAL, SEARCH].flatMap((t) => renderTeamNamespace(t)).map((o) => o.kind);
    expect(kinds).not.toContain('ClusterRole');
    expect(kinds).not.toContain('ClusterRoleBinding');
    for (const [, rules] of all) {
      for (const r of rules) {
        expect(r.resources).not.toEqual(expect.arrayContaining(['namespaces']));
        expect(r.resources).not.toEqual(expect.arrayContaining(['nodes']));
      }
    }
  });

  test('no deletecollection, escalate, bind or impersonate anywhere', () => {
    for (const [, rules] of all) {
      for (const r of rules) {
        for (const verb of ['deletecollection', 'escalate', 'bind', 'impersonate']) expect(r.verbs).not.toContain(verb);
      }
    }
  });

  test('hasWildcard catches a star in any position', () => {
    expect(hasWildcard([{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }])).toBe(true);
    expect(hasWildcard([{ apiGroups: [''], resources: ['*/exec'], verbs: ['get'] }])).toBe(true);
    expect(hasWildcard([{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }])).toBe(true);
    expect(hasWildcard([{ apiGroups: [''], resources: ['pods'], verbs: ['get'], resourceNames: ['*'] }])).toBe(true);
  });

  test('no pods and no Secrets means no attach rule (empty resourceNames would mean every one)', () => {
    expect(attachRules([])).toEqual([]);
    expect(attachRules([], [])).toEqual([]);
    expect(attachRules(['a-0'], []).map((r) => r.resources[0])).toEqual(['pods/exec', 'pods/portforward']);
  });

  test('CI rules refuse a kind they do not know', () => {
    expect(() => ciRules(['ClusterRole'])).toThrow("ciRules: no resource is known for kind 'ClusterRole'");
  });
});

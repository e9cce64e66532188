import {
  ATTACH_ANNOTATION, DEFAULT_SSH_PORT, DevEnvironmentSpec, KubeObject, ValidationError, readAttachRecord, renderDevEnvironment,
  validateDevEnvironment,
} from '../lib';

const minimal: DevEnvironmentSpec = { name: 'api', namespace: 'team-web', owner: 'alice@example.com', image: 'node:20' };

const custom: DevEnvironmentSpec = {
  name: 'api',
  namespace: 'team-web',
  owner: 'alice@example.com',
  image: 'node:20',
  command: ['npm', 'run', 'dev'],
  workingDir: '/workspace/api',
  sync: [{ local: 'api', remote: '/workspace/api', ignore: ['*.log'] }, { local: 'shared', remote: '/workspace/shared' }],
  env: [
    { name: 'NODE_ENV', value: 'development' },
    { name: 'TOKEN', secretKeyRef: { name: 'api-token', key: 'token' } },
    { name: 'REGION', configMapKeyRef: { name: 'settings', key: 'region' } },
    { name: 'POD', fieldRef: { fieldPath: 'metadata.name' } },
  ],
  envFrom: [{ configMap: 'shared-settings' }, { secret: 'shared-secrets', prefix: 'S_' }],
  ports: [{ name: 'http', port: 3000 }, { port: 9229 }],
  caches: [{ path: '/workspace/api/node_modules', size: '8Gi', storageClass: 'fast' }, { path: '/home/dev/.npm', name: 'npm' }],
  resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
  nodeSelector: { pool: 'dev' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'dev', effect: 'NoSchedule' }],
  serviceAccountName: 'api-dev',
  labels: { team: 'web' },
  annotations: { 'example.com/ticket': 'DEV-1' },
  workspace: { size: '20Gi', storageClass: 'fast' },
  runAsUser: 1001,
  sidecar: { port: 2022, user: 'alice', image: 'registry.example.com/sync:1', authorizedKeysSecret: 'alice-keys', hostKeySecret: 'api-hostkey' },
};

function byKind(objects: KubeObject[], kind: string): any[] {
  return objects.filter((o) => o.kind === kind);
}

describe('renderDevEnvironment', () => {
  test('defaults', () => {
    expect(renderDevEnvironment(minimal)).toMatchSnapshot();
  });

  test('a custom environment', () => {
    expect(renderDevEnvironment(custom)).toMatchSnapshot();
  });

  test('is pure: the same spec renders the same objects, and the spec is not changed', () => {
    const before = JSON.stringify(custom);
    expect(renderDevEnvironment(custom)).toEqual(renderDevEnvironment(custom));
    expect(JSON.stringify(custom)).toBe(before);
  });

  test('objects come in apply order, each named and namespaced', () => {
    const objects = renderDevEnvironment(custom);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'PersistentVolumeClaim/api-workspace',
      'PersistentVolumeClaim/api-cache-workspace-api-node-modules',
      'PersistentVolumeClaim/api-cache-npm',
      'ConfigMap/api-sshd',
      'Service/api',
      'StatefulSet/api',
    ]);
    for (const o of objects) expect(o.metadata.namespace).toBe('team-web');
  });

  test('a StatefulSet of one replica whose pod name is stable, with the dev container and the sidecar sharing the workspace', () => {
    const [sts] = byKind(renderDevEnvironment(minimal), 'StatefulSet');
    expect(sts.spec.replicas).toBe(1);
    expect(sts.spec.serviceName).toBe('api');
    const [dev, sync] = sts.spec.template.spec.containers;
    expect(dev.name).toBe('dev');
    expect(sync.name).toBe('sync');
    const ws = { name: 'kubedev-workspace', mountPath: '/workspace', subPath: 'workspace' };
    expect(dev.volumeMounts).toContainEqual(ws);
    expect(sync.volumeMounts).toContainEqual(ws);
    expect(dev.workingDir).toBe('/workspace');
    expect(sync.ports).toEqual([{ name: 'ssh', containerPort: DEFAULT_SSH_PORT, protocol: 'TCP' }]);
  });

  test('a cache inside a sync folder is added to that folder\'s ignores, so the mirror never deletes it', () => {
    const [sts] = byKind(renderDevEnvironment(custom), 'StatefulSet');
    const record = readAttachRecord(sts, 'test');
    expect(record.folders).toEqual([
      { local: 'api', remote: '/workspace/api', ignore: ['*.log', '/node_modules/'] },
      { local: 'shared', remote: '/workspace/shared', ignore: [] },
    ]);
  });

  test('the attach record carries what the runner needs', () => {
    const [sts] = byKind(renderDevEnvironment(custom), 'StatefulSet');
    expect(JSON.parse(sts.metadata.annotations[ATTACH_ANNOTATION])).toEqual({
      version: 1,
      name: 'api',
      namespace: 'team-web',
      workload: { kind: 'StatefulSet', name: 'api' },
      pod: 'api-0',
      selector: { 'kubedev.io/environment': 'api' },
      container: 'dev',
      sidecar: 'sync',
      ssh: {
        port: 2022, user: 'alice', hostKeySecret: 'api-hostkey', hostKeyPublicKey: 'ssh_host_ed25519_key.pub', authorizedKeysSecret: 'alice-keys',
      },
      workspace: '/workspace/api',
      folders: [
        { local: 'api', remote: '/workspace/api', ignore: ['*.log', '/node_modules/'] },
        { local: 'shared', remote: '/workspace/shared', ignore: [] },
      ],
      ports: [{ name: 'http', port: 3000, protocol: 'TCP' }, { name: 'port-9229', port: 9229, protocol: 'TCP' }],
    });
  });

  test('no private key material in the output', () => {
    const text = JSON.stringify([renderDevEnvironment(minimal), renderDevEnvironment(custom)]);
    expect(text).not.toMatch(/PRIVATE KEY|BEGIN OPENSSH|b3BlbnNzaC1rZXktdjE/);
    expect(byKind(renderDevEnvironment(custom), 'Secret')).toEqual([]);
  });

  test('security may be relaxed only by name', () => {
    const [sts] = byKind(renderDevEnvironment({ ...minimal, security: { runAsRoot: true, addCapabilities: ['SYS_PTRACE'] } }), 'StatefulSet');
    const [dev, sync] = sts.spec.template.spec.containers;
    expect(dev.securityContext).toEqual({
      runAsNonRoot: false, runAsUser: 0, allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['SYS_PTRACE'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    // The sidecar stays restricted whatever the dev container may do.
    expect(sync.securityContext).toEqual({
      runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' }, readOnlyRootFilesystem: true,
    });
  });

  test('refuses an invalid spec with every problem at once', () => {
    const bad = { ...minimal, name: 'Bad_Name', image: '', sidecar: { port: 80 } };
    expect(() => renderDevEnvironment(bad)).toThrow(ValidationError);
    try {
      renderDevEnvironment(bad);
    } catch (e) {
      expect((e as ValidationError).problems).toHaveLength(3);
    }
  });
});

describe('validateDevEnvironment: exact messages', () => {
  const check = (patch: Partial<DevEnvironmentSpec>): string[] => validateDevEnvironment({ ...minimal, name: 'e', ...patch } as DevEnvironmentSpec);

  test('a valid spec has no problems', () => {
    expect(validateDevEnvironment(minimal)).toEqual([]);
    expect(validateDevEnvironment(custom)).toEqual([]);
  });

  test('invalid DNS-1123 names', () => {
    expect(check({ name: 'My_Env' })).toEqual([
      "DevEnvironment 'My_Env': name is not a DNS-1123 label of at most 52 characters (got 'My_Env'). Use lowercase letters, digits and '-', starting and ending with a letter or digit.",
    ]);
    expect(check({ name: 'a'.repeat(53) })).toHaveLength(1);
    expect(check({ namespace: 'Team A' })).toEqual([
      "DevEnvironment 'e': namespace is not a DNS-1123 label (got 'Team A'). Use lowercase letters, digits and '-', at most 63 characters.",
    ]);
  });

  test('missing image and owner', () => {
    expect(check({ image: '' })).toEqual([
      "DevEnvironment 'e': image is missing (got ''). Set image to the dev container's image, e.g. 'node:20'.",
    ]);
    expect(check({ owner: undefined })).toEqual([
      "DevEnvironment 'e': owner is missing (got nothing). Set owner to the developer's user name as the cluster authenticates it.",
    ]);
  });

  test('relative or / remote paths', () => {
    expect(check({ sync: [{ local: '.', remote: 'app' }, { local: 'x', remote: '/' }] })).toEqual([
      "DevEnvironment 'e': sync folder #1 remote path must be an absolute path other than '/' (got 'app'). Use an absolute folder such as '/workspace'.",
      "DevEnvironment 'e': sync folder #2 remote path must be an absolute path other than '/' (got '/'). Use an absolute folder such as '/workspace'.",
    ]);
  });

  test('two sync folders on the same or nested remote paths', () => {
    expect(check({ sync: [{ local: '.', remote: '/app' }, { local: 'x', remote: '/app/lib' }, { local: 'y', remote: '/srv/' }, { local: 'z', remote: '/srv' }] })).toEqual([
      "DevEnvironment 'e': sync folders #1 and #2 map to the same or nested remote paths (got '/app' and '/app/lib'). Give each sync folder its own remote path, none inside another.",
      "DevEnvironment 'e': sync folders #3 and #4 map to the same or nested remote paths (got '/srv/' and '/srv'). Give each sync folder its own remote path, none inside another.",
    ]);
    expect(check({ sync: [{ local: '.', remote: '/app' }, { local: 'x', remote: '/application' }] })).toEqual([]);
  });

  test('port collisions, including with the sidecar', () => {
    expect(check({ ports: [{ name: 'http', port: 3000 }, { name: 'web', port: 3000 }, { name: 'other', port: 2222 }, { port: 70000 }] })).toEqual([
      "DevEnvironment 'e': ports 'http' and 'web' use the same port (got 3000). Give each port its own number.",
      "DevEnvironment 'e': port 'other' collides with the sync sidecar's SSH port (got 2222). Use another port, or move the sidecar with sidecar.port.",
      "DevEnvironment 'e': port 'port-70000' is outside 1-65535 (got 70000). Use a port between 1 and 65535.",
    ]);
    expect(check({ ports: [{ name: 'a', port: 1 }, { name: 'a', port: 2 }, { name: 'Bad Name', port: 3 }] })).toEqual([
      "DevEnvironment 'e': port name 'a' is used twice (got 'a'). Give each port its own name.",
      "DevEnvironment 'e': port name is not a valid port name (got 'Bad Name'). Use at most 15 lowercase letters, digits and '-', with at least one letter.",
    ]);
  });

  test('bad resource quantities', () => {
    expect(check({ resources: { requests: { cpu: '2 cores', memory: '2Gi' }, limits: { memory: '1Gi' } } })).toEqual([
      "DevEnvironment 'e': resources.requests.cpu is not a Kubernetes quantity (got '2 cores'). Use a quantity such as '500m' or '2'.",
      "DevEnvironment 'e': resources.requests.memory is above resources.limits.memory (got '2Gi' > '1Gi'). Lower the request or raise the limit.",
    ]);
    expect(check({ workspace: { size: 'big' } })).toEqual([
      "DevEnvironment 'e': workspace.size is not a Kubernetes quantity (got 'big'). Use a size such as '10Gi'.",
    ]);
  });

  test('an SSH port outside 1024-65535', () => {
    for (const port of [22, 70000, 1023.5]) {
      expect(check({ sidecar: { port } })).toEqual([
        `DevEnvironment 'e': sidecar.port is outside 1024-65535 (got ${port}). Use an unprivileged port; the default is 2222.`,
      ]);
    }
    expect(check({ sidecar: { port: 1024 } })).toEqual([]);
  });

  test('duplicate env names', () => {
    expect(check({ env: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }, { name: 'A', secretKeyRef: { name: 's', key: 'k' } }] })).toEqual([
      "DevEnvironment 'e': env 'A' is defined more than once (got 3 definitions). Keep one definition per name.",
    ]);
    expect(check({ env: [{ name: 'B', value: '1', secretKeyRef: { name: 's', key: 'k' } }] })).toEqual([
      "DevEnvironment 'e': env 'B' must have exactly one of value, secretKeyRef, configMapKeyRef, fieldRef (got [\"value\",\"secretKeyRef\"]). Keep exactly one source.",
    ]);
  });

  test('two caches on the same path, and caches that would hide a sync folder', () => {
    expect(check({ caches: [{ path: '/root/.cache' }, { path: '/root/.cache/' }] })).toEqual([
      "DevEnvironment 'e': caches #1 and #2 use the same path (got '/root/.cache/'). Give each cache its own path.",
    ]);
    expect(check({ sync: [{ local: '.', remote: '/app' }], caches: [{ path: '/app' }, { path: 'rel' }, { path: '/x', size: 'lots' }] })).toEqual([
      "DevEnvironment 'e': cache '/app' would hide sync folder '/app' (got '/app'). Put the cache inside the sync folder or elsewhere, never at or above it.",
      "DevEnvironment 'e': cache #2 path must be an absolute path other than '/' (got 'rel'). Use the folder to keep, e.g. '/home/dev/.cache/pip'.",
      "DevEnvironment 'e': cache '/x' size is not a Kubernetes quantity (got 'lots'). Use a size such as '5Gi'.",
    ]);
  });

  test('runAsUser and sidecar user may not be root', () => {
    expect(check({ runAsUser: 0, sidecar: { user: 'root' } })).toEqual([
      "DevEnvironment 'e': sidecar.user is not a non-root user name (got 'root'). Use the image's non-root user, e.g. 'dev'.",
      "DevEnvironment 'e': runAsUser must be a non-root uid (got 0). Use a uid above 0 (the default is 1000); to run the dev container as root, set security.runAsRoot.",
    ]);
  });

  test('every problem at once', () => {
    expect(check({ name: 'X', image: '', sidecar: { port: 1 }, ports: [{ port: 3000, name: 'one' }, { port: 3000, name: 'two' }] })).toHaveLength(4);
  });
});

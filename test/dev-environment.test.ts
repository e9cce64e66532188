import {
  ATTACH_ANNOTATION, DEFAULT_SSH_PORT, attachRecordOf, DevEnvironmentSpec, KubeObject, ValidationError, readAttachRecord, renderDevEnvironment,
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
  onSync: [{ paths: ['package.json', 'package-lock.json'], run: 'npm ci' }, { paths: ['src/**'], restart: true }],
  reverse: [{ remote: 9230, local: 9229, name: 'debug' }],
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
      process: { command: ['npm', 'run', 'dev'], control: '/etc/kubedev/control' },
      hooks: [{ paths: ['package.json', 'package-lock.json'], run: 'npm ci' }, { paths: ['src/**'], restart: true }],
      reverse: [{ name: 'debug', remote: 9230, local: 9229 }],
    });
  });

  test('attachRecordOf refuses an invalid spec as render does', () => {
    expect(() => attachRecordOf({ ...minimal, sync: [{ local: '.', remote: '/' }] })).toThrow(
      new ValidationError(["DevEnvironment 'api': sync folder #1 remote path is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'."]),
    );
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
      "DevEnvironment 'e': sync folder #1 remote path is not an absolute path (got 'app'). Use an absolute folder, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #2 remote path is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'.",
    ]);
  });

  test('system folders, kernel file systems and paths that are not normalized, through the one remote-root check', () => {
    const remotes = ['/etc', '/home', '/usr/local', '/proc/1/root', '/sys/x', '/dev/sda', '/dev/shm', '/a/../etc', '/a//b', '/a/', '/a/./b', '/a\nb', '//'];
    expect(check({ sync: remotes.map((remote, i) => ({ local: `l${i}`, remote })) })).toEqual([
      "DevEnvironment 'e': sync folder #1 remote path is the system folder '/etc' (got '/etc'). Mirror into a folder of its own, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #2 remote path is the system folder '/home' (got '/home'). Mirror into a folder of its own, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #3 remote path is the system folder '/usr/local' (got '/usr/local'). Mirror into a folder of its own, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #4 remote path lies inside '/proc', a kernel file system (got '/proc/1/root'). Mirror into an ordinary folder, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #5 remote path lies inside '/sys', a kernel file system (got '/sys/x'). Mirror into an ordinary folder, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #6 remote path lies inside '/dev', a kernel file system (got '/dev/sda'). Mirror into an ordinary folder, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #7 remote path lies inside '/dev', a kernel file system (got '/dev/shm'). Mirror into an ordinary folder, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #8 remote path is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/a/../etc'). Write it without them, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #9 remote path is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/a//b'). Write it as '/a/b'.",
      "DevEnvironment 'e': sync folder #10 remote path is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/a/'). Write it as '/a'.",
      "DevEnvironment 'e': sync folder #11 remote path is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/a/./b'). Write it as '/a/b'.",
      "DevEnvironment 'e': sync folder #12 remote path holds a control character (NUL, line break, tab, ...) (got '/a\nb'). Use a plain absolute path, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #13 remote path is '/', the whole file system (got '//'). Mirror into a folder of its own, e.g. '/workspace'.",
    ]);
    // Below a system folder is fine (a home folder's project, a scratch folder on /dev/shm).
    expect(check({ sync: [{ local: 'a', remote: '/home/dev/app' }, { local: 'b', remote: '/var/www' }, { local: 'c', remote: '/dev/shm/scratch' }] })).toEqual([]);
  });

  test('sync folders that collide with the sidecar\'s own mounts', () => {
    const remotes = ['/tmp/ws', '/etc/kubedev', '/etc/kubedev/sshd', '/etc/kubedev/host-keys/x', '/etc/kubedev/authorized-keys', '/tmp'];
    expect(check({ sync: remotes.map((remote, i) => ({ local: `l${i}`, remote })) })).toEqual([
      "DevEnvironment 'e': sync folder #1 remote path collides with the sync sidecar's own mount '/tmp' (got '/tmp/ws'). Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #2 remote path collides with the sync sidecar's own mount '/etc/kubedev/sshd' (got '/etc/kubedev'). Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #3 remote path collides with the sync sidecar's own mount '/etc/kubedev/sshd' (got '/etc/kubedev/sshd'). Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #4 remote path collides with the sync sidecar's own mount '/etc/kubedev/host-keys' (got '/etc/kubedev/host-keys/x'). Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #5 remote path collides with the sync sidecar's own mount '/etc/kubedev/authorized-keys' (got '/etc/kubedev/authorized-keys'). Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folder #6 remote path is the system folder '/tmp' (got '/tmp'). Mirror into a folder of its own, e.g. '/workspace'.",
      "DevEnvironment 'e': sync folders #2 and #3 map to the same or nested remote paths (got '/etc/kubedev' and '/etc/kubedev/sshd'). Give each sync folder its own remote path, none inside another.",
      "DevEnvironment 'e': sync folders #2 and #4 map to the same or nested remote paths (got '/etc/kubedev' and '/etc/kubedev/host-keys/x'). Give each sync folder its own remote path, none inside another.",
      "DevEnvironment 'e': sync folders #2 and #5 map to the same or nested remote paths (got '/etc/kubedev' and '/etc/kubedev/authorized-keys'). Give each sync folder its own remote path, none inside another.",
    ]);
  });

  test('local folders outside the project folder', () => {
    const locals = ['/', '../../..', '..', 'a/../../b', '/home/alice', '~', '~/code', 'C:\\Users\\alice', 'a\nb'];
    const fix = "Give it relative to the project folder kubedev runs in, e.g. '.' or 'api'.";
    const absolute = 'is absolute, so it depends on the machine and may hold anything (a home folder, its keys)';
    expect(check({ sync: locals.map((local, i) => ({ local, remote: `/w${i}` })) })).toEqual([
      `DevEnvironment 'e': sync folder #1 local path ${absolute} (got '/'). ${fix}`,
      `DevEnvironment 'e': sync folder #2 local path leads outside the project folder (got '../../..'). ${fix}`,
      `DevEnvironment 'e': sync folder #3 local path leads outside the project folder (got '..'). ${fix}`,
      `DevEnvironment 'e': sync folder #4 local path leads outside the project folder (got 'a/../../b'). ${fix}`,
      `DevEnvironment 'e': sync folder #5 local path ${absolute} (got '/home/alice'). ${fix}`,
      `DevEnvironment 'e': sync folder #6 local path ${absolute} (got '~'). ${fix}`,
      `DevEnvironment 'e': sync folder #7 local path ${absolute} (got '~/code'). ${fix}`,
      `DevEnvironment 'e': sync folder #8 local path ${absolute} (got 'C:\\Users\\alice'). ${fix}`,
      `DevEnvironment 'e': sync folder #9 local path holds a control character (NUL, line break, tab, ...) (got 'a\nb'). ${fix}`,
    ]);
    expect(check({ sync: [{ local: '.', remote: '/a' }, { local: './api/../web', remote: '/b' }, { local: 'x/..', remote: '/c' }] })).toEqual([]);
  });

  test('ignore patterns that are not a list of one-line strings', () => {
    expect(check({ sync: [{ local: '.', remote: '/a', ignore: ['ok', 'two\nlines'] }, { local: 'b', remote: '/b', ignore: { '*.log': true } as never }] })).toEqual([
      "DevEnvironment 'e': sync folder #1 ignore is not a list of one-line patterns (got [\"ok\",\"two\\nlines\"]). Give a list of gitignore-style patterns, e.g. ['*.log', 'build/'].",
      "DevEnvironment 'e': sync folder #2 ignore is not a list of one-line patterns (got {\"*.log\":true}). Give a list of gitignore-style patterns, e.g. ['*.log', 'build/'].",
    ]);
  });

  test('two sync folders on the same or nested remote paths', () => {
    expect(check({ sync: [{ local: '.', remote: '/app' }, { local: 'x', remote: '/app/lib' }, { local: 'y', remote: '/srv' }, { local: 'z', remote: '/srv' }] })).toEqual([
      "DevEnvironment 'e': sync folders #1 and #2 map to the same or nested remote paths (got '/app' and '/app/lib'). Give each sync folder its own remote path, none inside another.",
      "DevEnvironment 'e': sync folders #3 and #4 map to the same or nested remote paths (got '/srv' and '/srv'). Give each sync folder its own remote path, none inside another.",
    ]);
    expect(check({ sync: [{ local: '.', remote: '/app' }, { local: 'x', remote: '/application' }] })).toEqual([]);
  });

  test('sync folders that differ only in letter case, or nest but for case', () => {
    const fix = 'Give each sync folder its own remote path, none inside another whatever the case (a case-insensitive disk would merge them).';
    expect(check({ sync: [{ local: 'a', remote: '/a' }, { local: 'b', remote: '/a-2' }, { local: 'c', remote: '/A' }, { local: 'd', remote: '/A-2/x' }] })).toEqual([
      `DevEnvironment 'e': sync folders #1 and #3 map to remote paths that are the same or nested but for letter case (got '/a' and '/A'). ${fix}`,
      `DevEnvironment 'e': sync folders #2 and #4 map to remote paths that are the same or nested but for letter case (got '/a-2' and '/A-2/x'). ${fix}`,
    ]);
  });

  test('every sync folder gets a sub-path of the workspace of its own, even when the slugs collide', () => {
    const objects = renderDevEnvironment({ ...minimal, sync: [{ local: 'a', remote: '/a' }, { local: 'b', remote: '/a-1' }, { local: 'c', remote: '/a.1' }, { local: 'd', remote: '/a_1' }] });
    const mounts = byKind(objects, 'StatefulSet')[0].spec.template.spec.containers[1].volumeMounts.filter((m: any) => m.name === 'kubedev-workspace');
    expect(mounts.map((m: any) => m.subPath)).toEqual(['a', 'a-1', 'a-1-2', 'a-1-3']);
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

  test('cache paths with glob or control characters (they become ignore rules)', () => {
    const fix = "Name one folder literally, e.g. '/home/dev/.cache/pip'.";
    const what = 'path holds a glob or control character (one of * ? [ ] { } ! \\ or a line break)';
    expect(check({ sync: [{ local: '.', remote: '/app' }], caches: ['/app/*', '/app/node_modules?', '/app/[ab]', '/app/{a,b}', '/app/!x', '/app/a\\b', '/app/a\nb'].map((path) => ({ path })) })).toEqual(
      ['/app/*', '/app/node_modules?', '/app/[ab]', '/app/{a,b}', '/app/!x', '/app/a\\b', '/app/a\nb'].map((p, i) => `DevEnvironment 'e': cache #${i + 1} ${what} (got '${p}'). ${fix}`),
    );
  });

  test('mounts and volumes copied from an original workload may not land on kubedev\'s own', () => {
    const inherit = {
      source: { kind: 'Deployment', name: 'api' },
      volumes: [{ name: 'config', configMap: { name: 'c' } }, { name: 'kubedev-workspace', emptyDir: {} }],
      volumeMounts: [{ name: 'config', mountPath: '/app/' }, { name: 'config', mountPath: '/app/config' }],
    };
    expect(check({ sync: [{ local: '.', remote: '/app' }], inherit })).toEqual([
      "DevEnvironment 'e': the mount of volume 'config' inherited from Deployment 'api' lands on a sync folder or cache (got '/app/'). Move the sync folder or cache elsewhere, or drop that mount from the copy.",
      "DevEnvironment 'e': volume 'kubedev-workspace' inherited from Deployment 'api' uses a name kubedev keeps for its own volumes (got 'kubedev-workspace'). Rename it in the original; names starting with 'kubedev-' are kubedev's.",
    ]);
  });

  test('a spec of the wrong shape (from JavaScript or a config file): one problem per field, never a TypeError', () => {
    expect(check({ sync: '.', ports: [null, { port: 80 }], command: 'npm start', security: { addCapabilities: 'ALL' }, annotations: { n: 1 }, env: [{ name: 'PORT', value: 3000 }] } as never)).toEqual([
      "DevEnvironment 'e': sync is not a list (got '.'). Give sync as a list of objects, or leave it out.",
      "DevEnvironment 'e': ports #1 is not an object (got null). Give each entry of ports as an object.",
      "DevEnvironment 'e': command is not a list of strings (got 'npm start'). Give command as a list of strings, e.g. ['npm', 'run', 'dev'].",
      "DevEnvironment 'e': security.addCapabilities is not a list of strings (got 'ALL'). Give security.addCapabilities as a list of strings, or leave it out.",
      "DevEnvironment 'e': env 'PORT' value is not a string (got 3000). Quote it: Kubernetes takes environment values as strings, e.g. '3000'.",
      "DevEnvironment 'e': annotation 'n' is not a string (got 1). Give annotation values as strings (JSON.stringify a structure).",
    ]);
    expect(validateDevEnvironment(null as never)).toEqual([
      "DevEnvironment '<unnamed>': the spec is not an object (got null). Pass an object with at least name, namespace, owner and image.",
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

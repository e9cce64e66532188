/**
 * `kubedev keys`: real key files under a temporary XDG_CONFIG_HOME, a fake kubectl for --apply (no
 * cluster here), and a real OpenSSH sshd + ssh client proving the keys and known_hosts work together.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseAllDocuments, stringify } from 'yaml';
import { utils } from 'ssh2';
import { renderDevEnvironment } from '../lib/dev-environment';
import { UsageError } from '../sync/errors';
import { runKeys, KeysOptions } from '../sync/cli/keys';
import { authorizedKeysLine, generateEd25519, keyPaths } from '../sync/attach/key-store';
import { checkHostKey } from '../sync/engine/known-hosts';
import { makeFakeKubectl, FakeKubectl } from './support/fake-kubectl';
import { startSshd, Sshd } from './support/sshd';

let tmp: string;
let envFile: string;
let saved: NodeJS.ProcessEnv;

function writeEnvFile(dir: string): string {
  const objects = [
    ...renderDevEnvironment({ name: 'api', namespace: 'team-web', owner: 'alice@example.com', image: 'node:20-bookworm' }),
    ...renderDevEnvironment({ name: 'worker', namespace: 'team-web', owner: 'bob@example.com', image: 'python:3.12' }),
  ];
  const file = path.join(dir, 'dist', 'app.k8s.yaml');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, objects.map((o) => stringify(o)).join('---\n'));
  return file;
}

async function keys(options: KeysOptions): Promise<{ stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  err.on('data', (d: Buffer) => (stderr += d.toString()));
  await runKeys(options, { stdout: out, stderr: err });
  return { stdout, stderr };
}

const mode = (f: string): number => fs.statSync(f).mode & 0o777;

beforeEach(() => {
  saved = { ...process.env };
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-keys-'));
  envFile = writeEnvFile(path.join(tmp, 'project'));
  process.env.XDG_CONFIG_HOME = path.join(tmp, 'config');
  process.env.HOME = path.join(tmp, 'home');
  delete process.env.KUBECONFIG;
});

afterEach(() => {
  process.env = saved;
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('kubedev keys --env FILE --name NAME', () => {
  test('makes both key pairs (folder 0700, files 0600), prints the two Secrets, pins the host key', async () => {
    const { stdout, stderr } = await keys({ env: envFile, name: 'api' });
    const p = keyPaths('team-web', 'api');
    expect(p.dir).toBe(path.join(tmp, 'config', 'kubedev', 'keys', 'team-web', 'api'));
    expect(mode(p.dir)).toBe(0o700);
    for (const f of [p.clientKey, p.clientPublicKey, p.hostKey, p.hostPublicKey, p.knownHosts]) expect(mode(f)).toBe(0o600);
    expect(fs.readdirSync(p.dir).sort()).toEqual(['id_ed25519', 'id_ed25519.pub', 'known_hosts', 'ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
    expect(stderr).toContain(`made keys for team-web/api in ${p.dir}`);

    // The private keys are real OpenSSH ed25519 keys whose public halves are the .pub files.
    for (const [priv, pub] of [[p.clientKey, p.clientPublicKey], [p.hostKey, p.hostPublicKey]]) {
      const text = fs.readFileSync(priv, 'utf8');
      expect(text.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(true);
      const derived = execFileSync('ssh-keygen', ['-y', '-f', priv], { encoding: 'utf8' }).trim();
      expect(fs.readFileSync(pub, 'utf8').split(' ').slice(0, 2).join(' ')).toBe(derived.split(' ').slice(0, 2).join(' '));
      expect(derived.startsWith('ssh-ed25519 ')).toBe(true);
    }

    // Two Secrets, named as the environment references them, holding exactly the files.
    const docs = parseAllDocuments(stdout).map((d) => d.toJS());
    expect(docs.map((d) => `${d.kind}/${d.metadata.namespace}/${d.metadata.name}`)).toEqual([
      'Secret/team-web/api-ssh-host-keys',
      'Secret/team-web/api-ssh-authorized-keys',
    ]);
    const dec = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
    expect(dec(docs[0].data.ssh_host_ed25519_key)).toBe(fs.readFileSync(p.hostKey, 'utf8'));
    expect(dec(docs[0].data['ssh_host_ed25519_key.pub'])).toBe(fs.readFileSync(p.hostPublicKey, 'utf8'));
    expect(dec(docs[1].data.authorized_keys)).toBe(`restrict ${fs.readFileSync(p.clientPublicKey, 'utf8').trim()}\n`);
    expect(docs[1].metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'kubedev', 'kubedev.io/environment': 'api' });

    // known_hosts names the host key for any port-forward on the loopback; the runner's check accepts it.
    const hostLine = fs.readFileSync(p.hostPublicKey, 'utf8').trim().split(' ');
    expect(fs.readFileSync(p.knownHosts, 'utf8')).toBe(`[127.0.0.1]:*,[localhost]:* ${hostLine[0]} ${hostLine[1]} kubedev:team-web/api\n`);
    const blob = Buffer.from(hostLine[1], 'base64');
    expect(checkHostKey(p.knownHosts, '127.0.0.1', 43123, blob).ok).toBe(true);
    const other = utils.generateKeyPairSync('ed25519').public.split(' ')[1];
    expect(checkHostKey(p.knownHosts, '127.0.0.1', 43123, Buffer.from(other, 'base64')).ok).toBe(false);

    // Nothing was written next to the synthesized file.
    expect(fs.readdirSync(path.dirname(envFile))).toEqual(['app.k8s.yaml']);
  });

  test('is idempotent: a second run keeps every key; --rotate replaces them', async () => {
    await keys({ env: envFile, name: 'api' });
    const p = keyPaths('team-web', 'api');
    const files = [p.clientKey, p.clientPublicKey, p.hostKey, p.hostPublicKey, p.knownHosts];
    const before = files.map((f) => fs.readFileSync(f, 'utf8'));
    const again = await keys({ env: envFile, name: 'api' });
    expect(again.stderr).toContain(`keys for team-web/api already in ${p.dir} (kept; --rotate makes new ones).`);
    expect(files.map((f) => fs.readFileSync(f, 'utf8'))).toEqual(before);

    // A lost public half is derived again from the private key, which is kept.
    fs.rmSync(p.clientPublicKey);
    fs.chmodSync(p.hostKey, 0o644);
    await keys({ env: envFile, name: 'api' });
    expect(files.map((f) => fs.readFileSync(f, 'utf8'))).toEqual(before);
    expect(mode(p.hostKey)).toBe(0o600);

    const rotated = await keys({ env: envFile, name: 'api', rotate: true });
    expect(rotated.stderr).toContain('new keys for team-web/api');
    const after = files.map((f) => fs.readFileSync(f, 'utf8'));
    for (let i = 0; i < files.length; i++) expect(after[i]).not.toBe(before[i]);
  });

  test('keys of two environments live apart', async () => {
    await keys({ env: envFile, name: 'api' });
    await keys({ env: envFile, name: 'worker' });
    const a = keyPaths('team-web', 'api');
    const w = keyPaths('team-web', 'worker');
    expect(fs.readFileSync(a.hostKey, 'utf8')).not.toBe(fs.readFileSync(w.hostKey, 'utf8'));
  });

  test('--apply sends the Secrets to kubectl apply in the environment namespace, and prints no key', async () => {
    const fake: FakeKubectl = makeFakeKubectl({});
    try {
      Object.assign(process.env, fake.env);
      const { stdout, stderr } = await keys({ env: envFile, name: 'api', apply: true });
      expect(stdout).toBe('');
      expect(stderr).toContain('kubedev: secret/api-ssh-host-keys created\nkubedev: secret/api-ssh-authorized-keys created\n');
      const calls = fake.calls();
      expect(calls.map((c) => c.args)).toEqual([['apply', '-n', 'team-web', '-f', '-']]);
      const applied = parseAllDocuments(calls[0].stdin).map((d) => d.toJS().metadata.name);
      expect(applied).toEqual(['api-ssh-host-keys', 'api-ssh-authorized-keys']);
    } finally {
      fake.remove();
    }
  });

  test('--apply with a cluster that is not reachable says so and how to check', async () => {
    const fake = makeFakeKubectl({ failAll: 'Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused' });
    try {
      Object.assign(process.env, fake.env);
      await expect(keys({ env: envFile, name: 'api', apply: true })).rejects.toThrow(
        "applying the key Secrets failed: cannot reach the cluster (kubectl apply -n team-web -f -: Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused). Check the context and that the cluster is up: kubectl config current-context && kubectl cluster-info",
      );
    } finally {
      fake.remove();
    }
  });

  test('the keys work with a real OpenSSH server and client', async () => {
    const { stdout } = await keys({ env: envFile, name: 'api' });
    const p = keyPaths('team-web', 'api');
    const docs = parseAllDocuments(stdout).map((d) => d.toJS());
    // What the pod would mount: the Secrets' contents as files.
    const mounted = path.join(tmp, 'mounted');
    fs.mkdirSync(mounted);
    const hostKey = path.join(mounted, 'ssh_host_ed25519_key');
    fs.writeFileSync(hostKey, Buffer.from(docs[0].data.ssh_host_ed25519_key, 'base64'), { mode: 0o600 });
    const ak = path.join(mounted, 'authorized_keys');
    fs.writeFileSync(ak, Buffer.from(docs[1].data.authorized_keys, 'base64'), { mode: 0o644 });
    let sshd: Sshd | undefined;
    try {
      sshd = await startSshd({ overrides: [`HostKey ${hostKey}`, `AuthorizedKeysFile ${ak}`] });
      const out = execFileSync('ssh', [
        '-F', '/dev/null', '-p', String(sshd.port), '-i', p.clientKey,
        '-o', `UserKnownHostsFile=${p.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
        '-o', 'IdentitiesOnly=yes', `${sshd.user}@127.0.0.1`, 'echo kubedev-ok',
      ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
      expect(out).toBe('kubedev-ok\n');
    } finally {
      await sshd?.close();
    }
  });
});

describe('kubedev keys refuses bad input before writing anything', () => {
  const configDir = (): string => path.join(tmp, 'config');

  test('an environment the file does not hold', async () => {
    await expect(keys({ env: envFile, name: 'apx' })).rejects.toThrow(new UsageError(`${envFile} holds no environment named 'apx' (it holds: api, worker). Pass one of those to --name.`));
    expect(fs.existsSync(configDir())).toBe(false);
  });

  test('a file that does not exist', async () => {
    await expect(keys({ env: 'dist/nope.k8s.yaml', name: 'api' })).rejects.toThrow(
      new UsageError("--env 'dist/nope.k8s.yaml': no such file. Synthesize it first ('npm run synth' or 'cdk8s synth') and pass a file from dist/."),
    );
  });

  test('a file that is not YAML', async () => {
    fs.writeFileSync(envFile, 'kind: [unclosed\n');
    await expect(keys({ env: envFile, name: 'api' })).rejects.toThrow(
      new UsageError(`--env '${envFile}' line 2 is not valid YAML (Flow sequence in block collection must be sufficiently indented and end with a ]). Synthesize it again.`),
    );
  });

  test('no --env and no --namespace', async () => {
    await expect(keys({ name: 'api' })).rejects.toThrow(
      new UsageError('say where the environment is: --env dist/<app>.k8s.yaml --name api (a synthesized file), or --namespace NS --name api (the live cluster).'),
    );
  });

  test('--apply with no kubeconfig names the fix, and makes no key', async () => {
    await expect(keys({ env: envFile, name: 'api', apply: true })).rejects.toThrow(
      new UsageError(
        `no kubeconfig: KUBECONFIG is not set and ${path.join(tmp, 'home', '.kube', 'config')} does not exist. Fetch your cluster's credentials (e.g. 'gcloud container clusters get-credentials CLUSTER', 'aws eks update-kubeconfig --name CLUSTER', 'az aks get-credentials -n CLUSTER -g GROUP') or set KUBECONFIG to a config file.`,
      ),
    );
    expect(fs.existsSync(configDir())).toBe(false);
  });

  test('a key folder inside the project (where keys could be committed)', async () => {
    const project = path.join(tmp, 'project');
    fs.mkdirSync(path.join(project, '.git'));
    process.env.XDG_CONFIG_HOME = path.join(project, '.config');
    await expect(keys({ env: envFile, name: 'api' })).rejects.toThrow(
      new UsageError(
        `the key folder ${path.join(project, '.config', 'kubedev', 'keys', 'team-web', 'api')} is inside the repository ${project}, where private keys could be committed or shipped. Point XDG_CONFIG_HOME outside it (or unset it to use ~/.config).`,
      ),
    );
    expect(fs.existsSync(path.join(project, '.config'))).toBe(false);
  });

  test('a private key file that is not a key is left alone', async () => {
    const p = keyPaths('team-web', 'api');
    fs.mkdirSync(p.dir, { recursive: true });
    fs.writeFileSync(p.clientKey, 'not a key\n');
    await expect(keys({ env: envFile, name: 'api' })).rejects.toThrow(`${p.clientKey} is not an unencrypted OpenSSH private key. Move it away, or make new keys with --rotate.`);
    expect(fs.readFileSync(p.clientKey, 'utf8')).toBe('not a key\n');
  });
});

describe('kubedev keys --namespace NS --name NAME (live cluster, through kubectl)', () => {
  test('reads the record from the workload on the cluster', async () => {
    const workloads = renderDevEnvironment({ name: 'api', namespace: 'team-web', owner: 'alice@example.com', image: 'node:20-bookworm' })
      .filter((o) => o.kind === 'StatefulSet');
    const fake = makeFakeKubectl({ workloads });
    try {
      Object.assign(process.env, fake.env);
      const { stdout } = await keys({ namespace: 'team-web', name: 'api' });
      expect(parseAllDocuments(stdout).map((d) => d.toJS().metadata.name)).toEqual(['api-ssh-host-keys', 'api-ssh-authorized-keys']);
      expect(fake.calls()[0].args).toEqual(['get', 'statefulsets.apps,deployments.apps', '-n', 'team-web', '-l', 'kubedev.io/environment=api', '-o', 'json']);
      await expect(keys({ namespace: 'team-web', name: 'web' })).rejects.toThrow(
        new UsageError("namespace 'team-web' holds no kubedev environment named 'web'. Apply it first (kubectl apply -f dist/<app>.k8s.yaml), or list what is there: kubectl get statefulsets -n team-web -l kubedev.io/environment"),
      );
    } finally {
      fake.remove();
    }
  });
});

describe('kubedev keys --apply under the least-privilege developer role', () => {
  test('a role that may not create the Secrets is told how to get them created once', async () => {
    const fake = makeFakeKubectl({
      failAll: 'Error from server (Forbidden): error when creating "STDIN": secrets is forbidden: User "alice" cannot create resource "secrets" in API group "" in the namespace "team-web"',
    });
    try {
      Object.assign(process.env, fake.env);
      await expect(keys({ env: envFile, name: 'api', apply: true })).rejects.toThrow(
        'the cluster refused to create the key Secrets (Error from server (Forbidden): error when creating "STDIN": secrets is forbidden: User "alice" cannot create resource "secrets" in API group "" in the namespace "team-web"). Your role may update them but not create them: ask an admin to create them once, empty (kubectl create secret generic api-ssh-host-keys -n team-web && kubectl create secret generic api-ssh-authorized-keys -n team-web), then run this again',
      );
    } finally {
      fake.remove();
    }
  });
});

describe('generateEd25519', () => {
  test('never hands out a key OpenSSH refuses (ssh2 drops a leading zero byte in about 1 key of 256)', () => {
    // 2,048 draws meet that case with probability 1 - (255/256)^2048 > 99.9 %.
    for (let i = 0; i < 2048; i++) {
      const pair = generateEd25519('t');
      const blob = Buffer.from(pair.public.split(/\s+/)[1], 'base64');
      expect(blob.length).toBe(51);
    }
    // And OpenSSH itself reads one back.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-keygen-'));
    const file = path.join(dir, 'id');
    const pair = generateEd25519('t');
    fs.writeFileSync(file, pair.private, { mode: 0o600 });
    expect(execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim().split(/\s+/).slice(0, 2).join(' ')).toBe(pair.public.split(/\s+/).slice(0, 2).join(' '));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('authorized_keys with reverse forwards', () => {
  test('restrict, with remote forwarding back on the declared ports only', () => {
    expect(authorizedKeysLine('ssh-ed25519 AAAA c', [9229, 9230])).toBe('restrict,port-forwarding,permitlisten="9229",permitlisten="9230" ssh-ed25519 AAAA c\n');
    expect(authorizedKeysLine('ssh-ed25519 AAAA c')).toBe('restrict ssh-ed25519 AAAA c\n');
  });
});

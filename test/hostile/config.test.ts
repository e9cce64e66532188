/**
 * Hostile and mistaken configuration: every refusal exits 2, names the flag or the attach record field
 * and the fix, and happens before anything connects. The port given is closed (nothing listens), so a
 * run that got as far as connecting would exit 1: exit 2 proves the check came first. No test here
 * ever connects as root or to a live server with `--remote /`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { stringify } from 'yaml';
import { ATTACH_ANNOTATION, DevEnvironmentSpec, KubeObject, UnsafeRemoteRootError, renderDevEnvironment } from '../../lib';
import { UsageError } from '../../sync/errors';
import { runKeys } from '../../sync/cli/keys';
import { keyPaths } from '../../sync/attach/key-store';
import { SyncSession } from '../../sync/engine/session';
import { runUp } from '../../sync/attach/up';
import { runCli } from '../support/cli';
import { freePort } from '../support/sshd';
import { tempDir } from '../support/trees';

jest.setTimeout(120_000);

let tmp: string;
let closed: number;
let key: { private: string; public: string; encrypted: string; empty: string; garbage: string; knownHosts: string };

beforeAll(async () => {
  tmp = tempDir('hostile-config');
  closed = await freePort();
  const k = (name: string): string => path.join(tmp, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', k('id')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret phrase', '-C', 'test', '-f', k('id_enc')]);
  fs.writeFileSync(k('empty'), '');
  fs.writeFileSync(k('garbage'), 'not a key\n');
  fs.writeFileSync(k('known_hosts'), '');
  key = { private: k('id'), public: k('id.pub'), encrypted: k('id_enc'), empty: k('empty'), garbage: k('garbage'), knownHosts: k('known_hosts') };
  fs.mkdirSync(k('project/src'), { recursive: true });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function flags(extra: Record<string, string> = {}): string[] {
  const f: Record<string, string> = {
    local: path.join(tmp, 'project', 'src'), remote: '/workspace', host: '127.0.0.1', port: String(closed), user: 'dev', identity: key.private, 'known-hosts': key.knownHosts, ...extra,
  };
  return ['sync', ...Object.entries(f).flatMap(([n, v]) => [`--${n}`, v]), '--once'];
}

/** Puts XDG_CONFIG_HOME back as it was (deleting it if it was unset). */
function restore(saved: string | undefined): void {
  if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
  else process.env.XDG_CONFIG_HOME = saved;
}

async function refused(args: string[], message: string, options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<void> {
  const r = await runCli(args, 30_000, { env: { XDG_CONFIG_HOME: path.join(tmp, 'config'), ...options.env }, cwd: options.cwd });
  expect(r.stderr).toBe(`kubedev: ${message}\n`);
  expect(r.code).toBe(2);
}

describe('--remote: / and system folders are refused before connecting (row 2)', () => {
  const own = "Mirror into a folder of its own, e.g. '/workspace'.";
  const cases: [string, string][] = [
    ['/', `option '--remote': the remote folder is '/', the whole file system (got '/'). ${own}`],
    ['//', `option '--remote': the remote folder is '/', the whole file system (got '//'). ${own}`],
    ['/etc', `option '--remote': the remote folder is the system folder '/etc' (got '/etc'). ${own}`],
    ['/home', `option '--remote': the remote folder is the system folder '/home' (got '/home'). ${own}`],
    ['/usr', `option '--remote': the remote folder is the system folder '/usr' (got '/usr'). ${own}`],
    ['/tmp', `option '--remote': the remote folder is the system folder '/tmp' (got '/tmp'). ${own}`],
    ['/lib64', `option '--remote': the remote folder is the system folder '/lib64' (got '/lib64'). ${own}`],
    ['/proc/self/root', "option '--remote': the remote folder lies inside '/proc', a kernel file system (got '/proc/self/root'). Mirror into an ordinary folder, e.g. '/workspace'."],
    ['/workspace/../..', "option '--remote': the remote folder is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/workspace/../..'). Write it without them, e.g. '/workspace'."],
    ['/workspace/../etc', "option '--remote': the remote folder is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/workspace/../etc'). Write it without them, e.g. '/workspace'."],
    ['/workspace/', "option '--remote': the remote folder is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/workspace/'). Write it as '/workspace'."],
    ['/work\nspace', "option '--remote': the remote folder holds a control character (NUL, line break, tab, ...) (got '/work\nspace'). Use a plain absolute path, e.g. '/workspace'."],
    ['workspace', "option '--remote': the remote folder is not an absolute path (got 'workspace'). Use an absolute folder, e.g. '/workspace'."],
  ];
  test.each(cases)('%j', async (remote, message) => {
    await refused(flags({ remote }), message);
  });

  test('a listening port sees no connection at all for a refused root; a safe root does connect', async () => {
    let connections = 0;
    const server = net.createServer((c) => {
      connections++;
      c.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = String((server.address() as net.AddressInfo).port);
    try {
      for (const remote of ['/', '/etc', '/workspace/../..']) {
        expect((await runCli(flags({ remote, port }))).code).toBe(2);
      }
      expect(connections).toBe(0);
      expect((await runCli(flags({ port }))).code).toBe(1);
      expect(connections).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });

  test('the closed port really is closed: a safe root gets as far as connecting, and fails with exit 1', async () => {
    const r = await runCli(flags(), 30_000);
    expect(r.code).toBe(1);
  });
});

describe('--identity is parsed before connecting (row 16)', () => {
  const fix = 'the private key the server accepts';
  test('a public key', async () => {
    await refused(flags({ identity: key.public }), `--identity '${key.public}' is a public key. Pass its private half (the file without '.pub'): ${fix}`);
  });
  test('a key protected by a passphrase', async () => {
    await refused(flags({ identity: key.encrypted }), `--identity '${key.encrypted}' is protected by a passphrase, which kubedev cannot ask for. Pass a key without one: ${fix}`);
  });
  test('an empty file', async () => {
    await refused(flags({ identity: key.empty }), `--identity '${key.empty}' is empty. Pass ${fix}`);
  });
  test('not a key at all', async () => {
    await refused(flags({ identity: key.garbage }), `--identity '${key.garbage}' is not a private key kubedev can use (Unsupported key format). Pass ${fix}`);
  });
  test('a folder', async () => {
    await refused(flags({ identity: tmp }), `--identity '${tmp}' is not a file. Pass ${fix}`);
  });
});

test('the programmatic SyncSession asks the same check, in its constructor', () => {
  const options = { localRoot: tmp, host: '127.0.0.1', port: closed, user: 'dev', identity: key.private, knownHosts: key.knownHosts, watch: false };
  expect(() => new SyncSession({ ...options, remoteRoot: '/' })).toThrow(
    new UnsafeRemoteRootError("SyncSession option 'remoteRoot': the remote folder is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'.", 'remoteRoot', '/'),
  );
  expect(() => new SyncSession({ ...options, remoteRoot: '/var' })).toThrow(/the remote folder is the system folder '\/var'/);
  expect(() => new SyncSession({ ...options, remoteRoot: 'relative' })).toThrow(/the remote folder is not an absolute path/);
});

describe('--port, --local and --ignore', () => {
  test.each(['0', '65536', 'abc', '22.5', '-1', ''])('--port %j', async (port) => {
    await refused(flags({ port }), `--port must be a TCP port number from 1 to 65535 (got '${port}'). Pass the port the server's sshd listens on`);
  });
  test('--local / (everything on the machine)', async () => {
    await refused(flags({ local: '/' }), "--local '/' is the root of the file system. Pass the project folder to mirror");
  });
  test('--local holding kubedev\'s private keys (a home folder)', async () => {
    const home = path.join(tmp, 'home');
    fs.mkdirSync(path.join(home, '.config', 'kubedev', 'keys'), { recursive: true });
    await refused(flags({ local: home }), `--local '${home}' holds kubedev's configuration folder '${path.join(home, '.config', 'kubedev')}' (with its private keys). Pass the project folder to mirror, not a folder above it`,
      { env: { XDG_CONFIG_HOME: path.join(home, '.config') } });
  });
  test('--ignore with a line break', async () => {
    await refused([...flags(), '--ignore', 'a\n!secret'], '--ignore "a\\n!secret" is not a one-line pattern. Pass gitignore-style patterns, one per --ignore');
  });
});

describe('--env: a forged or damaged attach record is bad input (rows 2 and 16)', () => {
  const spec: DevEnvironmentSpec = { name: 'web', namespace: 'team-a', owner: 'alice', image: 'node:20', sync: [{ local: 'src', remote: '/workspace' }], sidecar: { port: 2222 } };
  let file: string;
  const ID = (): string => `StatefulSet 'web' in ${file}`;
  const synth = 'Synthesize the file again with kubedev; never edit the record by hand.';

  beforeAll(async () => {
    file = path.join(tmp, 'project', 'app.k8s.yaml');
    fs.writeFileSync(file, renderDevEnvironment(spec).map((o) => stringify(o)).join('---\n'));
    const saved = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = path.join(tmp, 'config');
    try {
      await runKeys({ env: file, name: 'web' }, { stdout: new PassThrough(), stderr: new PassThrough() });
    } finally {
      restore(saved);
    }
  });

  /** Writes the record changed by `patch` to the env file. */
  function forge(patch: (r: Record<string, any>) => void): void {
    const objects = renderDevEnvironment(spec) as KubeObject[];
    const sts = objects.find((o) => o.kind === 'StatefulSet')!;
    const record = JSON.parse(sts.metadata.annotations![ATTACH_ANNOTATION]);
    patch(record);
    sts.metadata.annotations![ATTACH_ANNOTATION] = JSON.stringify(record);
    fs.writeFileSync(file, objects.map((o) => stringify(o)).join('---\n'));
  }
  const sync = (): string[] => ['sync', '--env', file, '--name', 'web', '--port', String(closed), '--once'];
  const cwd = (): string => path.join(tmp, 'project');

  test.each([
    ['remote /', (r: any) => { r.folders[0].remote = '/'; }, () => `${ID()}: attach record field 'folders[0].remote': sync folder #1 remote path is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'.`],
    ['remote /etc/kubedev/sshd', (r: any) => { r.folders[0].remote = '/etc/kubedev/sshd'; }, () => `${ID()}: attach record field 'folders[0].remote': sync folder #1 remote path collides with the sync sidecar's own mount '/etc/kubedev/sshd' (got '/etc/kubedev/sshd'). Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'.`],
    ['local ../../..', (r: any) => { r.folders[0].local = '../../..'; }, () => `${ID()}: attach record field 'folders[0].local': sync folder #1 local path leads outside the project folder (got '../../..'). Give it relative to the project folder kubedev runs in, e.g. '.' or 'api'.`],
    ['ssh.port 0', (r: any) => { r.ssh.port = 0; }, () => `${ID()}: attach record field 'ssh.port': sidecar.port is outside 1024-65535 (got 0). Use an unprivileged port; the default is 2222.`],
    ['ssh.port 99999', (r: any) => { r.ssh.port = 99999; }, () => `${ID()}: attach record field 'ssh.port': sidecar.port is outside 1024-65535 (got 99999). Use an unprivileged port; the default is 2222.`],
    ['ssh.port "22"', (r: any) => { r.ssh.port = '22'; }, () => `${ID()}: attach record field 'ssh.port' is not a number (got '22'). ${synth}`],
    ['ignore an object', (r: any) => { r.folders[0].ignore = { '*.log': true }; }, () => `${ID()}: attach record field 'folders[0].ignore' is not a list of patterns (got {"*.log":true}). ${synth}`],
    ['namespace with a slash', (r: any) => { r.namespace = '../kube-system'; }, () => `${ID()}: attach record field 'namespace': namespace is not a DNS-1123 label (got '../kube-system'). Use lowercase letters, digits and '-', at most 63 characters.`],
    ['folders missing', (r: any) => { delete r.folders; }, () => `${ID()}: attach record field 'folders' holds no sync folder (got nothing). Declare at least one sync folder and synthesize the file again.`],
  ])('%s: exit 2, the field named, nothing connected', async (_what, patch, message) => {
    forge(patch);
    await refused(sync(), message(), { cwd: cwd() });
  });

  test('the intact record passes every check and only then fails to connect (exit 1)', async () => {
    forge(() => undefined);
    const r = await runCli(sync(), 30_000, { env: { XDG_CONFIG_HOME: path.join(tmp, 'config') }, cwd: cwd() });
    expect(r.stderr).not.toContain('attach record');
    expect(r.code).toBe(1);
  });

  test('--identity defaulting to the key store: a public key there is refused by name', async () => {
    forge(() => undefined);
    const keys = keyPaths('team-a', 'web', { XDG_CONFIG_HOME: path.join(tmp, 'config') });
    const saved = fs.readFileSync(keys.clientKey);
    fs.copyFileSync(`${keys.clientKey}.pub`, keys.clientKey);
    try {
      await refused(sync(), `--identity '${keys.clientKey}' is a public key. Pass its private half (the file without '.pub'): the client key ('kubedev keys --env ${file} --name web' makes one in ${keys.dir})`, { cwd: cwd() });
    } finally {
      fs.writeFileSync(keys.clientKey, saved, { mode: 0o600 });
    }
  });

  test('kubedev keys refuses a record whose namespace would lead its key folder elsewhere', async () => {
    forge((r) => { r.namespace = '../../../tmp'; });
    await refused(['keys', '--env', file, '--name', 'web'], `${ID()}: attach record field 'namespace': namespace is not a DNS-1123 label (got '../../../tmp'). Use lowercase letters, digits and '-', at most 63 characters.`, { cwd: cwd() });
    expect(fs.existsSync(path.join(tmp, 'tmp'))).toBe(false);
  });

  test('kubedev up refuses the same records and keys before asking the cluster anything', async () => {
    const saved = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = path.join(tmp, 'config');
    const up = (): Promise<number> => runUp({ env: file, name: 'web', root: cwd() }, { stdout: new PassThrough(), stderr: new PassThrough() }, new AbortController().signal);
    try {
      forge((r) => { r.folders[0].remote = '/'; });
      await expect(up()).rejects.toThrow(new UsageError(`${ID()}: attach record field 'folders[0].remote': sync folder #1 remote path is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'.`));
      forge(() => undefined);
      const keys = keyPaths('team-a', 'web');
      const key0 = fs.readFileSync(keys.clientKey);
      fs.writeFileSync(keys.clientKey, '');
      try {
        await expect(up()).rejects.toThrow(new UsageError(`identity '${keys.clientKey}' is empty. Pass the key kubedev keys makes: kubedev keys --env ${file} --name web --rotate --apply`));
      } finally {
        fs.writeFileSync(keys.clientKey, key0, { mode: 0o600 });
      }
    } finally {
      restore(saved);
    }
  });
});

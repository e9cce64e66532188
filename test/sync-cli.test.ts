/**
 * `kubedev sync` as a command: usage errors (exit 2, before connecting), --once with --json and the
 * summary, a refused host key (exit 1, fingerprint named, nothing written), watch mode with JSON
 * events ended by SIGTERM (exit 0), and --env reading the attach record.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { ATTACH_ANNOTATION } from '../lib/attach';
import { runCli, startCli } from './support/cli';
import { Sshd, startSshd } from './support/sshd';
import { differences, eventually, snapshot, tempDir, writeTree } from './support/trees';

jest.setTimeout(60_000);

let sshd: Sshd;
const dirs: string[] = [];
beforeAll(async () => {
  sshd = await startSshd({ user: 'kubedev-test', asUser: true });
});
afterAll(async () => {
  await sshd?.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function folders(): { local: string; remote: string; base: string } {
  const local = tempDir('cli-local');
  const base = tempDir('cli-remote');
  fs.chownSync(base, sshd.uid, sshd.gid);
  dirs.push(local, base);
  return { local, base, remote: path.join(base, 'ws') };
}

function flags(local: string, remote: string, extra: Partial<Record<string, string>> = {}): string[] {
  const f: Record<string, string> = { local, remote, host: '127.0.0.1', port: String(sshd.port), user: sshd.user, identity: sshd.identity, 'known-hosts': sshd.knownHosts, ...extra };
  return Object.entries(f).flatMap(([k, v]) => [`--${k}`, v as string]);
}

describe('usage errors exit 2 with the flag named, before connecting', () => {
  const cases: [string, (l: string, r: string) => string[], string][] = [
    ['missing flags', (l) => ['sync', '--local', l], 'kubedev: missing --remote, --host, --port, --user, --identity, --known-hosts. Pass --local DIR'],
    ['bad port', (l, r) => ['sync', ...flags(l, r, { port: 'ssh' })], "kubedev: --port must be a TCP port number from 1 to 65535 (got 'ssh'). Pass the port the server's sshd listens on"],
    ['relative remote', (l) => ['sync', ...flags(l, 'workspace')], "kubedev: option '--remote': the remote folder is not an absolute path (got 'workspace'). Use an absolute folder, e.g. '/workspace'."],
    ['missing local folder', (_l, r) => ['sync', ...flags('/nonexistent/kubedev', r)], "kubedev: --local '/nonexistent/kubedev' is not an existing folder. Pass the local folder to mirror"],
    ['missing identity', (l, r) => ['sync', ...flags(l, r, { identity: '/nonexistent/id' })], "kubedev: --identity '/nonexistent/id' does not exist. Pass the private key the server accepts"],
    ['--env without --name', () => ['sync', '--env', 'dist/app.k8s.yaml'], 'kubedev: --env needs --name: pass the environment\'s name, e.g. --env dist/app.k8s.yaml --name my-env'],
  ];
  test.each(cases)('%s', async (_name, args, message) => {
    const { local, remote, base } = folders();
    const r = await runCli(args(local, remote));
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.code).toBe(2);
    expect(fs.readdirSync(base)).toEqual([]);
  });
});

test('--once --json mirrors, prints one synced event and a summary, exits 0', async () => {
  const { local, remote } = folders();
  writeTree(local, { 'a.txt': 'a', 'dir/b.sh': { content: '#!/bin/sh\n', mode: 0o755 }, 'ignored.log': 'x' });
  const r = await runCli(['sync', ...flags(local, remote), '--once', '--json', '--ignore', '*.log']);
  expect(r.code).toBe(0);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ event: 'synced', files: 3, deleted: 0, bytes: 11, total: 3 });
  expect(r.stderr).toMatch(new RegExp(`kubedev: mirrored ${local} to kubedev-test@127.0.0.1:${sshd.port}:${remote}: 3 sent, 0 deleted, 11 B in \\d+\\.\\d\\d s \\(3 entries in sync\\)`));
  expect(fs.existsSync(path.join(remote, 'ignored.log'))).toBe(false);
  expect(differences(snapshot(local, (p) => p.endsWith('.log')), snapshot(remote))).toEqual([]);
});

test('a host key not in --known-hosts: exit 1, fingerprint named, nothing written', async () => {
  const { local, remote, base } = folders();
  writeTree(local, { 'a.txt': 'a' });
  const kh = path.join(base, '..', `${path.basename(base)}-kh`);
  fs.writeFileSync(kh, `[127.0.0.1]:${sshd.port + 1} ${sshd.hostPublicKey}\n`);
  dirs.push(kh);
  const r = await runCli(['sync', ...flags(local, remote, { 'known-hosts': kh }), '--once', '--json']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`kubedev: host [127.0.0.1]:${sshd.port} is unknown: the server presented ssh-ed25519 ${sshd.hostKeyFingerprint}, which '${kh}' does not list.`);
  expect(JSON.parse(r.stdout.trim().split('\n').pop() as string)).toMatchObject({ event: 'error' });
  expect(fs.readdirSync(base)).toEqual([]);
});

test('watch mode: ready, synced per change, SIGTERM finishes and exits 0', async () => {
  const { local, remote } = folders();
  writeTree(local, { 'a.txt': 'a' });
  const run = startCli(['sync', ...flags(local, remote), '--json']);
  const events = (): { event: string }[] => run.stdout().trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
  await eventually(() => (events().some((e) => e.event === 'ready') ? [] : [`no ready event; stderr: ${run.stderr()}`]), 20_000, 'ready');
  fs.writeFileSync(path.join(local, 'b.txt'), 'b');
  await eventually(() => (events().some((e) => e.event === 'synced') ? [] : ['no synced event']), 10_000, 'synced');
  await eventually(() => differences(snapshot(local), snapshot(remote)), 10_000, 'mirror');
  run.child.kill('SIGTERM');
  expect(await run.exit(10_000)).toBe(0);
});

test('--env reads the attach record and the keys from the config folder', async () => {
  const { local, remote, base } = folders();
  writeTree(local, { 'src/app.js': 'x', 'cache/big': 'kept local' });
  const record = {
    version: 1, name: 'web', namespace: 'team-a', workload: { kind: 'StatefulSet', name: 'web' }, pod: 'web-0', selector: { 'kubedev.io/environment': 'web' }, container: 'dev', sidecar: 'sync',
    ssh: { port: sshd.port, user: sshd.user, hostKeySecret: 'web-ssh-host-keys', hostKeyPublicKey: 'ssh_host_ed25519_key.pub', authorizedKeysSecret: 'web-ssh-authorized-keys' },
    // The record's local folder is relative to the project folder kubedev runs in (an absolute one is refused).
    workspace: remote, folders: [{ local: path.basename(local), remote, ignore: ['cache/'] }], ports: [],
  };
  const yamlFile = path.join(base, '..', `${path.basename(base)}.k8s.yaml`);
  dirs.push(yamlFile);
  fs.writeFileSync(yamlFile, stringify({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web', namespace: 'team-a', annotations: { [ATTACH_ANNOTATION]: JSON.stringify(record) } }, spec: {} }));
  const config = tempDir('xdg');
  dirs.push(config);
  const keys = path.join(config, 'kubedev', 'keys', 'team-a', 'web');
  fs.mkdirSync(keys, { recursive: true });
  fs.copyFileSync(sshd.identity, path.join(keys, 'id_ed25519'));
  fs.writeFileSync(path.join(keys, 'known_hosts'), `[127.0.0.1]:*,[localhost]:* ${sshd.hostPublicKey} kubedev:team-a/web\n`);
  const r = await runCli(['sync', '--env', yamlFile, '--name', 'web', '--once'], 30_000, { env: { XDG_CONFIG_HOME: config }, cwd: path.dirname(local) });
  expect(r.stderr).toContain('mirrored');
  expect(r.code).toBe(0);
  expect(differences(snapshot(local, (p) => p.startsWith('cache')), snapshot(remote))).toEqual([]);
  const wrong = await runCli(['sync', '--env', yamlFile, '--name', 'api', '--once'], 30_000, { env: { XDG_CONFIG_HOME: config } });
  expect(wrong.code).toBe(2);
  expect(wrong.stderr).toContain(`kubedev: ${yamlFile} holds no environment named 'api' (it holds: web). Pass one of those to --name.`);
});

/**
 * Two-way sync end to end on podman: an environment whose sync folder is `mode: 'two-way'` with
 * `remoteOwns: ['node_modules/**', 'package-lock.json']`, attached with `kubedev sync --env` (watching).
 *
 * 1. An `npm install`-style step runs INSIDE THE DEV CONTAINER (a script the runner has just carried
 *    up, run by the host's node mounted read-only, as in inner-loop.e2e.ts; no registry here): it
 *    writes a lock file, package folders with text, binary and executable files, and `.bin` symlinks.
 *    All of it appears on the laptop byte for byte (content, mode, link targets), checked against a
 *    manifest computed inside the dev container.
 * 2. A conflict made on purpose: the runner stops (the laptop closes), the same file is edited on both
 *    sides, the runner comes back (`--once`): a `conflict` event, the local file untouched, the
 *    container's version beside it. `kubedev conflicts` lists it; `--take remote` and `--take local`
 *    resolve two of them, and both sides end equal.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { renderDevEnvironment } from '../lib/dev-environment';
import { KubeObject } from '../lib/k8s';
import { cleanUp, CliRun, playWithHostNode, runCli } from './harness';
import { CONTAINERS_CONF, podman, podmanQuiet, requirePodman, sidecarPort } from './podman';
import { accepts } from '../test/support/sshd';

const REPO = path.resolve(__dirname, '..');
const NAME = 'kubedev-twoway';
const POD = `${NAME}-0`;
const DEV = `${POD}-dev`;
const WS = '/workspace';
const TSX = pathToFileURL(require.resolve('tsx')).href;

let tmp = '';
let app = '';
let volumes: string[] = [];
let sync: CliRun | undefined;
const results: Record<string, unknown> = {};

/** What `npm install` leaves behind, made by the dev container's own process. */
const FAKE_INSTALL = `const fs = require('fs'), path = require('path'), crypto = require('crypto');
const lock = { name: 'app', lockfileVersion: 3, packages: {} };
for (let i = 0; i < 40; i++) {
  const dir = path.join('node_modules', 'pkg-' + i);
  fs.mkdirSync(path.join(dir, 'lib', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'pkg-' + i, version: '1.0.' + i, bin: 'cli.js' }) + '\\n');
  fs.writeFileSync(path.join(dir, 'index.js'), 'module.exports = ' + i + ';\\n'.repeat(1 + i));
  fs.writeFileSync(path.join(dir, 'lib', 'deep', 'data.bin'), crypto.randomBytes(1000 + i * 997));
  fs.writeFileSync(path.join(dir, 'cli.js'), '#!/usr/bin/env node\\nconsole.log(' + i + ')\\n', { mode: 0o755 });
  fs.chmodSync(path.join(dir, 'cli.js'), 0o755);
  if (i % 4 === 0) {
    fs.mkdirSync(path.join('node_modules', '.bin'), { recursive: true });
    fs.symlinkSync(path.join('..', 'pkg-' + i, 'cli.js'), path.join('node_modules', '.bin', 'pkg-' + i));
  }
  lock.packages['node_modules/pkg-' + i] = { version: '1.0.' + i, integrity: 'sha512-' + crypto.createHash('sha512').update('pkg-' + i).digest('base64') };
}
fs.writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\\n');
console.log('added 40 packages');
`;

/**
 * `kind mode path [sha256|link target]` for every entry under `rels`, sorted. Read while the runner may
 * still be pulling: its temporary files (`.kubedev-*`, renamed or removed a moment later) are not part
 * of the tree, and a path that vanishes during the walk is left out (the caller looks again).
 */
function localManifest(root: string, rels: string[]): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    if (path.posix.basename(rel).startsWith('.kubedev-')) return;
    const abs = path.join(root, rel);
    try {
      const st = fs.lstatSync(abs);
      const mode = (st.mode & 0o777).toString(8);
      if (st.isSymbolicLink()) out.push(`l ${rel} ${fs.readlinkSync(abs)}`);
      else if (st.isDirectory()) {
        out.push(`d ${mode} ${rel}`);
        for (const n of fs.readdirSync(abs)) walk(path.posix.join(rel, n));
      } else out.push(`f ${mode} ${rel} ${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  };
  for (const r of rels) if (fs.existsSync(path.join(root, r)) || isLink(path.join(root, r))) walk(r);
  return out.sort();
}

function isLink(abs: string): boolean {
  try {
    return fs.lstatSync(abs).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The same manifest computed inside the dev container with its own coreutils (one exec). */
async function devManifest(rels: string[]): Promise<string[]> {
  const script = `cd ${WS} && for r in ${rels.join(' ')}; do [ -e "$r" ] || [ -L "$r" ] || continue; find "$r" -printf '%y %m %p %l\\n'; done; echo ==; for r in ${rels.join(' ')}; do [ -e "$r" ] && find "$r" -type f -exec sha256sum {} +; done; true`;
  const [listing, sums] = (await podman(['exec', DEV, '/bin/sh', '-c', script])).split('==\n');
  const sha = new Map(sums.split('\n').filter(Boolean).map((l) => [l.slice(66), l.slice(0, 64)] as const));
  const out: string[] = [];
  for (const l of listing.split('\n').filter(Boolean)) {
    const [kind, mode, p, target] = l.split(' ');
    if (kind === 'l') out.push(`l ${p} ${target}`);
    else if (kind === 'd') out.push(`d ${mode} ${p}`);
    else out.push(`f ${mode} ${p} ${sha.get(p) ?? 'unhashed'}`);
  }
  return out.sort();
}

function kubedev(args: string[], env: NodeJS.ProcessEnv): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, ['--import', TSX, path.join(REPO, 'e2e', 'kubedev-cli.ts'), ...args], { cwd: path.dirname(app), env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const x = e as { status?: number; stdout?: string; stderr?: string };
    return { code: x.status ?? 1, stdout: x.stdout ?? '', stderr: x.stderr ?? String(e) };
  }
}

afterAll(async () => {
  await cleanUp([sync?.proc], POD, volumes, tmp);
  process.stdout.write(`e2e two-way: ${JSON.stringify(results)}\n`);
}, 120_000);

test('npm-install output made in the dev container comes back byte for byte; a conflict is kept and resolved with kubedev conflicts', async () => {
  requirePodman();
  execFileSync(path.join(REPO, 'sync', 'sidecar', 'build-local.sh'), [], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CONTAINERS_CONF } });
  await podmanQuiet(['pod', 'rm', '-f', '-t', '0', POD]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-twoway-'));
  const project = path.join(tmp, 'project');
  app = path.join(project, 'app');
  fs.mkdirSync(path.join(project, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(app, 'tools'), { recursive: true });
  fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","dependencies":{}}\n');
  fs.writeFileSync(path.join(app, 'tools', 'fake-npm-install.js'), FAKE_INSTALL);
  fs.writeFileSync(path.join(app, 'config.json'), '{"v":0}\n');
  fs.writeFileSync(path.join(app, 'notes.md'), 'first\n');
  const sshPort = await sidecarPort();

  const rendered: KubeObject[] = renderDevEnvironment({
    name: NAME,
    namespace: 'e2e',
    owner: 'e2e@example.com',
    image: 'localhost/kubedev-dev:local',
    sync: [{ local: 'app', remote: WS, mode: 'two-way', remoteOwns: ['node_modules/**', 'package-lock.json'] }],
    sidecar: { image: 'localhost/kubedev-sidecar:local', port: sshPort },
  });
  fs.writeFileSync(path.join(project, 'dist', 'app.k8s.yaml'), rendered.map((o) => stringify(o)).join('---\n'));
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(tmp, 'config'), XDG_STATE_HOME: path.join(tmp, 'state'), CONTAINERS_CONF: path.resolve(CONTAINERS_CONF) };
  const target = ['--env', 'dist/app.k8s.yaml', '--name', NAME];
  const keys = kubedev(['keys', ...target], env);
  expect(keys.stderr).toBe('');
  const played = await playWithHostNode(rendered, keys.stdout, tmp);
  volumes = played.volumes;
  for (const deadline = Date.now() + 60_000; !(await accepts(sshPort)); ) {
    if (Date.now() > deadline) throw new Error(`the sidecar's sshd did not listen on 127.0.0.1:${sshPort} within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }

  // 1. Watching, two-way (the folder's mode from the record).
  const s = (sync = runCli(['sync', ...target, '--json'], env, project));
  await s.waitFor((e) => e.event === 'ready', "'ready'", 90_000);
  expect(await podman(['exec', DEV, '/bin/cat', `${WS}/config.json`])).toBe('{"v":0}\n');

  // The install runs in the dev container, as the dev user, in the synced folder.
  const said = await podman(['exec', '-w', WS, DEV, 'node', 'tools/fake-npm-install.js']);
  expect(said).toBe('added 40 packages\n');
  const t0 = performance.now();
  const rels = ['node_modules', 'package-lock.json'];
  const want = await devManifest(rels);
  expect(want.length).toBeGreaterThan(250);
  expect(want.filter((l) => l.startsWith('l '))).toHaveLength(10);
  let got: string[] = [];
  for (const deadline = Date.now() + 30_000; ; ) {
    got = localManifest(app, rels);
    if (got.join('\n') === want.join('\n')) break;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  results.installToLocalMs = Math.round(performance.now() - t0); // includes computing the dev manifest
  expect(got).toEqual(want);
  expect(s.events.filter((e) => e.event === 'error' || e.event === 'conflict')).toEqual([]);
  expect(s.events.some((e) => e.event === 'pulled')).toBe(true);
  // A local edit still goes up while watching.
  fs.writeFileSync(path.join(app, 'notes.md'), 'second\n');
  for (const deadline = Date.now() + 15_000; (await podman(['exec', DEV, '/bin/cat', `${WS}/notes.md`])) !== 'second\n'; ) {
    if (Date.now() > deadline) throw new Error(`notes.md never reached the dev container:\n${s.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // The sidecar image (Debian, perl-base is Essential) runs the session's swap helper: saves take no process each.
  const helpers = await podman(['exec', `${POD}-sync`, '/bin/sh', '-c', 'for p in /proc/[0-9]*; do grep -qs "kubedev swap helper" "$p/cmdline" && echo "$p"; done; true']);
  expect(helpers.trim().split('\n').filter(Boolean).length).toBeGreaterThan(0);

  // 2. The laptop closes: both sides edit the same files.
  s.proc.kill('SIGINT');
  expect(await s.exit).toBe(0);
  fs.writeFileSync(path.join(app, 'config.json'), '{"v":"laptop"}\n');
  fs.writeFileSync(path.join(app, 'notes.md'), 'laptop notes\n');
  await podman(['exec', DEV, '/bin/sh', '-c', `printf '{"v":"container"}\\n' > ${WS}/config.json && printf 'container notes\\n' > ${WS}/notes.md`]);

  const again = runCli(['sync', ...target, '--once', '--json'], env, project);
  expect(await again.exit).toBe(0);
  const conflicts = again.events.filter((e) => e.event === 'conflict');
  expect(conflicts.map((e) => e.path).sort()).toEqual(['config.json', 'notes.md']);
  expect(again.stderr()).toContain("kubedev: conflict: 'config.json'");
  // Neither version lost: the local file untouched, the container's beside it, the container's in place.
  expect(fs.readFileSync(path.join(app, 'config.json'), 'utf8')).toBe('{"v":"laptop"}\n');
  const copy = conflicts.find((e) => e.path === 'config.json')!.copy as string;
  expect(path.basename(copy)).toMatch(/^config\.conflict-remote-\d{8}-\d{6}\.json$/);
  expect(fs.readFileSync(path.resolve(app, copy), 'utf8')).toBe('{"v":"container"}\n');
  expect(await podman(['exec', DEV, '/bin/cat', `${WS}/config.json`])).toBe('{"v":"container"}\n');

  // `kubedev conflicts` lists both; --take remote for one, --take local for the other.
  const listed = kubedev(['conflicts', ...target, '--json'], env);
  expect(listed.code).toBe(0);
  expect(listed.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { path: string }).path).sort()).toEqual(['config.json', 'notes.md']);
  const takeRemote = kubedev(['conflicts', ...target, '--take', 'remote', 'config.json'], env);
  expect(takeRemote).toMatchObject({ code: 0 });
  const takeLocal = kubedev(['conflicts', ...target, '--take', 'local', 'app/notes.md'], env);
  expect(takeLocal).toMatchObject({ code: 0 });
  expect(fs.readFileSync(path.join(app, 'config.json'), 'utf8')).toBe('{"v":"container"}\n');
  expect(fs.existsSync(path.resolve(app, copy))).toBe(false);
  expect(await podman(['exec', DEV, '/bin/cat', `${WS}/notes.md`])).toBe('laptop notes\n');
  expect(fs.readFileSync(path.join(app, 'notes.md'), 'utf8')).toBe('laptop notes\n');
  const none = kubedev(['conflicts', ...target], env);
  expect(none).toMatchObject({ code: 0, stdout: '' });
  // Both sides equal at the end (the install's output included).
  const all = ['config.json', 'notes.md', 'package.json', 'tools', ...rels];
  expect(localManifest(app, all)).toEqual(await devManifest(all));
  // No temporary file of the runner's is left anywhere on the laptop (the manifest skips them).
  expect(fs.readdirSync(app, { recursive: true }).map(String).filter((n) => path.basename(n).startsWith('.kubedev-'))).toEqual([]);
  await podman(['kube', 'down', played.playFile]);
});

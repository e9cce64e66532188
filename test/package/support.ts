/**
 * The package test's tools: pack this repository once, make fresh consumer projects in a temporary
 * folder, install the tarball into them with npm, and run commands there on the Node that runs the
 * test (`.ci/run` runs it again on Node 22 and 24 by putting their binaries first on PATH).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');
const OWN = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

/** The version this repository tests with, for a consumer's package.json. */
export function testedVersion(name: string): string {
  const v = OWN.devDependencies[name] ?? OWN.dependencies[name];
  if (!v) throw new Error(`${name} is not a dependency of kubedev`);
  return v;
}

/**
 * What a consumer asks for of a peer dependency (cdk8s, Pulumi, ...), by KUBEDEV_PACKAGE_TEST_PEERS:
 * `tested` (default) the version this repository tests with; `newest` the peer range itself, so npm
 * takes the newest release it allows (what a new user gets); `oldest` the range's lower bound.
 */
export function peerSpec(name: string): string {
  const mode = peerMode();
  const range = OWN.peerDependencies[name];
  if (!range) throw new Error(`${name} is not a peer dependency of kubedev`);
  if (mode === 'tested') return testedVersion(name);
  if (mode === 'newest') return range;
  if (mode === 'oldest') return oldestRelease(name, range);
  throw new Error(`KUBEDEV_PACKAGE_TEST_PEERS must be tested, newest or oldest (got '${mode}')`);
}

/** The lowest release in `range`, as the registry lists them (a range's bound need not be a release). */
function oldestRelease(name: string, range: string): string {
  const listed = JSON.parse(run('npm', ['view', `${name}@${range}`, 'version', '--json'], REPO).stdout) as string | string[];
  const parts = (v: string) => v.split(/[.-]/).slice(0, 3).map(Number);
  const versions = (Array.isArray(listed) ? listed : [listed]).filter((v) => !v.includes('-'));
  versions.sort((a, b) => {
    const [x, y] = [parts(a), parts(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  if (versions.length === 0) throw new Error(`no release of ${name} matches ${range}`);
  return versions[0];
}

function peerMode(): string {
  return process.env.KUBEDEV_PACKAGE_TEST_PEERS ?? 'tested';
}

/** The consumer's TypeScript: the tested one, or with the oldest peers TypeScript 5 (old Pulumi refuses 6). */
export function consumerTypescript(): string {
  return peerMode() === 'oldest' ? OLDEST_TYPESCRIPT : testedVersion('typescript');
}
const OLDEST_TYPESCRIPT = '5.9.3';

/** The child environment: this Node first on PATH, so npm, npx and bins run on it too. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
  for (const k of Object.keys(env)) if (k.startsWith('npm_') || k === 'INIT_CWD') delete env[k];
  delete env.NODE_OPTIONS;
  return env;
}

export interface Ran { readonly status: number | null; readonly stdout: string; readonly stderr: string; readonly ms: number }

/** Runs a command in `cwd`; throws with its output unless it exits as `expect` says (0 by default). */
export function run(cmd: string, args: readonly string[], cwd: string, options: { expect?: number | 'any'; env?: Record<string, string> } = {}): Ran {
  const start = Date.now();
  const r = spawnSync(cmd, [...args], { cwd, env: childEnv(options.env), encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300_000 });
  const ran = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - start };
  const expect = options.expect ?? 0;
  if (r.error) throw r.error;
  if (expect !== 'any' && r.status !== expect) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}, expected ${expect}\n--- stdout\n${ran.stdout.slice(-4000)}\n--- stderr\n${ran.stderr.slice(-4000)}`);
  }
  return ran;
}

/** Runs node (the one running this test) with `args`. */
export function node(args: readonly string[], cwd: string, options: { expect?: number | 'any' } = {}): Ran {
  return run(process.execPath, args, cwd, options);
}

/**
 * npm install with the registry only as a fallback: cached metadata and tarballs are used as they
 * are (`--prefer-offline`); KUBEDEV_PACKAGE_TEST_OFFLINE=1 forbids the network altogether.
 */
export function npmInstall(cwd: string, args: readonly string[] = []): Ran {
  const mode = process.env.KUBEDEV_PACKAGE_TEST_OFFLINE === '1' ? '--offline' : '--prefer-offline';
  return run('npm', ['install', mode, '--no-audit', '--no-fund', '--loglevel=error', ...args], cwd);
}

export interface Packed {
  readonly tarball: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly string[];
  /** npm's warnings while packing (a clean `npm pack` has none). */
  readonly warnings: readonly string[];
  readonly ms: number;
}

/** `npm pack` of this repository (its `prepare` script builds first) into `dir`. */
export function pack(dir: string): Packed {
  const r = run('npm', ['pack', '--json', '--pack-destination', dir], REPO);
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  const warnings = r.stderr.split('\n').filter((l) => /^npm (warn|WARN)/.test(l));
  return { tarball: path.join(dir, info.filename), size: info.size, unpackedSize: info.unpackedSize, files: info.files.map((f) => f.path).sort(), warnings, ms: r.ms };
}

/** A fresh temporary folder, removed by `removeTemp`. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `kubedev-${prefix}-`));
}

export function removeTemp(dir: string | undefined): void {
  if (dir && process.env.KUBEDEV_PACKAGE_TEST_KEEP !== '1') fs.rmSync(dir, { recursive: true, force: true });
}

/** Writes `files` (path -> text, or JSON for objects) under `dir`. */
export function writeFiles(dir: string, files: Record<string, string | object>): void {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2) + '\n');
  }
}

/** The last line of a program's stdout, parsed as JSON. */
export function lastJson<T>(ran: Ran): T {
  const lines = ran.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** Appends a measured figure to KUBEDEV_PACKAGE_TEST_REPORT (a file) when set, and always to stderr. */
export function report(figure: string): void {
  const line = `package test (node ${process.version}): ${figure}\n`;
  if (process.env.KUBEDEV_PACKAGE_TEST_REPORT) fs.appendFileSync(process.env.KUBEDEV_PACKAGE_TEST_REPORT, line);
  process.stderr.write(line);
}

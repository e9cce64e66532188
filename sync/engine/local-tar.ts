/**
 * The local packer of the bulk path: the local `tar` (the fastest feed measured), its output gzipped
 * (`gzip -1`, a separate process) when the link is distant.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { Readable } from 'node:stream';

/** Which local `tar` packs for us: GNU tar, bsdtar, or none (then tar-stream); `KUBEDEV_TAR=js` forces none. */
let localTarChecked: Promise<'gnu' | 'bsd' | undefined> | undefined;
export function localTarKind(): Promise<'gnu' | 'bsd' | undefined> {
  if (process.env.KUBEDEV_TAR === 'js') return Promise.resolve(undefined);
  // Asked without blocking: the shell for the moves is opening meanwhile.
  localTarChecked ??= new Promise((resolve) => {
    execFile('tar', ['--version'], { encoding: 'utf8', timeout: 5000 }, (err, out) => resolve(err ? undefined : /GNU tar/.test(out) ? 'gnu' : /bsdtar/.test(out) ? 'bsd' : undefined));
  });
  return localTarChecked;
}

/** Whether a local `gzip` can compress the archive (asked once, without blocking). */
let localGzipChecked: Promise<boolean> | undefined;
export function localGzipAvailable(): Promise<boolean> {
  localGzipChecked ??= new Promise((resolve) => {
    execFile('gzip', ['--version'], { encoding: 'utf8', timeout: 5000 }, (err) => resolve(!err));
  });
  return localGzipChecked;
}

/**
 * The environment of the local tar and gzip: the run's, without the options they read from it
 * (TAR_OPTIONS=--dereference would send a link's target as a file and still report it in sync; GZIP
 * likewise). Exact arguments only: the same archive whatever the user's shell (or, for a run served by
 * the agent, whatever the shell that started the agent) holds.
 */
function toolEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TAR_OPTIONS;
  delete env.GZIP;
  return env;
}

/** tar's words for a member it could not read (it is left out of the archive). */
const UNREADABLE_LINE = /^tar: (.*): Cannot open: (.*)$/;

/**
 * Packs `names` (relative to `root`, no recursion) with the local tar: the fastest feed measured
 * (tar-stream in-process costs about twice the CPU). Members it cannot open are returned in `skipped`
 * (name, tar's reason). GNU tar writes `--format=gnu` (its usual default, stated so that packed-look.ts
 * reads the headers it expects whatever tar was built with); `onArchived` is given the archive's bytes
 * as they come (before gzip). The stream flows from the next tick on: pipe it in this one.
 */
export function localTar(
  root: string,
  names: readonly string[],
  o: { gzip?: boolean; kind?: 'gnu' | 'bsd'; onArchived?: (chunk: Buffer) => void } = {},
): { stream: Readable; done: Promise<{ skipped: [string, string][] }>; kill(): void } {
  const format = o.kind === 'gnu' ? ['--format=gnu'] : [];
  const child = spawn('tar', ['-c', '-f', '-', ...format, '-C', root, '--no-recursion', '--null', '-T', '-'], { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 1_000_000) stderr += d;
  });
  const done = new Promise<{ skipped: [string, string][] }>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run the local 'tar': ${e.message}. Install tar, or set KUBEDEV_TAR=js`)));
    child.once('close', (code) => {
      const lines = stderr.split('\n').filter((l) => l.trim() !== '');
      const skipped = lines.map((l) => UNREADABLE_LINE.exec(l)).filter((m): m is RegExpExecArray => m !== null).map((m): [string, string] => [m[1], m[2]]);
      // A read error mid-file is serious on purpose: tar pads the member with zeros, which no look at
      // the file's size and mtime can see, so the whole archive is refused (the run says why).
      const serious = lines.filter((l) => !UNREADABLE_LINE.test(l) && !/No such file|Cannot stat|file changed as we read it|File removed before we read it|File shrank|Exiting with failure status/.test(l));
      if (code === 0 || code === 1 || (code === 2 && serious.length === 0)) resolve({ skipped });
      else reject(new Error(`local tar failed (exit ${code}): ${serious.slice(0, 3).join('; ') || stderr.trim()}`));
    });
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(Buffer.from(names.map((n) => `${n}\0`).join('')));
  const told = o.onArchived;
  if (told) {
    child.stdout.on('data', told);
  }
  // An archive given up (the server's side failed, the run was cut): tar, blocked on a full pipe, would wait forever.
  const stop = (p: ChildProcess): void => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  if (!o.gzip) return { stream: child.stdout, done, kill: () => stop(child) };
  const gz = spawn('gzip', ['-1', '-c', '-n'], { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
  child.stdout.pipe(gz.stdin);
  gz.stdin.on('error', () => undefined);
  const both = Promise.all([done, exited(gz, 'gzip')]).then(([d]) => d);
  return { stream: gz.stdout, done: both, kill: () => (stop(child), stop(gz)) };
}

/** Resolves when `child` exits 0; rejects naming `what` otherwise. */
function exited(child: ChildProcess, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 10_000) stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run the local '${what}': ${e.message}`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`local ${what} failed (exit ${code}): ${stderr.trim()}`))));
  });
}


/** Runs the kubedev CLI from source in a child process (node + tsx), as a user would run it. */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
/** Resolved here, so a test may run the command from any folder (cwd). */
const TSX = require.resolve('tsx/cjs');
const ENTRY = `require(${JSON.stringify(path.join(ROOT, 'sync', 'cli', 'main.ts'))}).main(process.argv.slice(1)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 99; });`;

export interface CliRun {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code; rejects after `ms`. */
  exit(ms: number): Promise<number | null>;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this (non-root) user, with setpriv; the caller must be root. */
  as?: { uid: number; gid: number };
}

export function startCli(args: readonly string[], options: CliOptions = {}): CliRun {
  const node = [process.execPath, '-r', TSX, '-e', ENTRY, ...args];
  const argv = options.as ? ['setpriv', `--reuid=${options.as.uid}`, `--regid=${options.as.gid}`, '--clear-groups', '--', ...node] : node;
  const child = spawn(argv[0], argv.slice(1), {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit: (ms) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`kubedev ${args.join(' ')} did not exit within ${ms} ms; stderr: ${err}`));
        }, ms);
      });
      return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
    },
  };
}

export async function runCli(args: readonly string[], ms = 30_000, options: CliOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = startCli(args, options);
  const code = await r.exit(ms);
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

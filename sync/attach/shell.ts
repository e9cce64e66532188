/**
 * Commands in the dev container through `kubectl exec`, with the terminal handed over: `-it` gives the
 * remote shell raw mode, window resizes and Ctrl-C exactly as `kubectl exec -it` does, because it is
 * kubectl exec; the exit code is the command's.
 */
import { spawn } from 'node:child_process';
import { AttachRecord } from '../../lib/attach';
import { kubectlBinary, withContext } from './kubectl';

/** A login-like shell: bash where the image has it, else sh. */
export const SHELL: readonly string[] = ['sh', '-c', 'command -v bash >/dev/null 2>&1 && exec bash || exec sh'];

export interface ExecOptions {
  /** -i: pass stdin. */
  readonly stdin: boolean;
  /** -t: allocate a TTY. */
  readonly tty: boolean;
  readonly context?: string;
  readonly signal?: AbortSignal;
}

/** The kubectl arguments of an exec into the dev container. */
export function execArgs(record: AttachRecord, command: readonly string[], o: Pick<ExecOptions, 'stdin' | 'tty'>): string[] {
  const flags = [...(o.stdin ? ['-i'] : []), ...(o.tty ? ['-t'] : [])];
  return ['exec', ...flags, '-n', record.namespace, record.pod ?? `${record.name}-0`, '-c', record.container, '--', ...command];
}

/**
 * Runs a command in the dev container with this process's stdio; resolves to its exit code
 * (kubectl exec passes the remote code through; 1 for kubectl's own failures).
 */
export function execInDev(record: AttachRecord, command: readonly string[], o: ExecOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlBinary(), withContext(execArgs(record, command, o), o.context), {
      env: process.env,
      stdio: [o.stdin ? 'inherit' : 'ignore', 'inherit', 'inherit'],
      signal: o.signal,
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new Error(`kubectl not found ('${kubectlBinary()}' is not on PATH). Install kubectl, or set KUBEDEV_KUBECTL to its path`));
      else if (e.name === 'AbortError') resolve(130);
      else reject(e);
    });
    child.on('close', (code, sig) => resolve(code ?? (sig === 'SIGINT' ? 130 : 1)));
  });
}

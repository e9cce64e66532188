/**
 * `kubedev up`: attach to an environment and keep the developer's folders mirrored into it, with its
 * SSH and declared ports forwarded to 127.0.0.1. Ctrl-C (or SIGTERM) finishes the batch in flight,
 * closes the forwards and exits 0. The work is in sync/attach/up.ts.
 */
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_UP_TIMEOUT_SECONDS, runUp, UpOptions } from '../attach/up';

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`'${value}' is not a positive number of seconds.`);
  return n;
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description("Wait for an environment's pod, port-forward its SSH and declared ports to 127.0.0.1, mirror every sync folder into it, start the dev process and stream its output, and run its onSync hooks after each batch, until Ctrl-C. With no process declared and a terminal: an interactive shell in the dev container instead.")
    .option('--env <file>', 'a synthesized YAML file holding the environment (e.g. dist/app.k8s.yaml)')
    .option('--namespace <ns>', 'look the environment up on the live cluster, in this namespace (instead of --env)')
    .requiredOption('--name <name>', "the environment's name")
    .option('--timeout <seconds>', 'how long to wait for the pod', seconds, DEFAULT_UP_TIMEOUT_SECONDS)
    .option('--root <dir>', "folder the environment's relative sync paths start from (default: the current folder)")
    .option('--no-ports', "do not forward the environment's declared ports")
    .option('--context <ctx>', 'kubectl context to use')
    .option('--json', 'one JSON object per event on stdout')
    .action(async (opts: UpOptions) => {
      const ctl = new AbortController();
      const stop = (): void => ctl.abort(new Error('interrupted'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const shell = process.stdin.isTTY === true && process.stdout.isTTY === true && !opts.json;
        const code = await runUp({ ...opts, shell }, { stdout: process.stdout, stderr: process.stderr }, ctl.signal);
        if (code !== 0) process.exitCode = code;
      } finally {
        process.removeListener('SIGINT', stop);
        process.removeListener('SIGTERM', stop);
      }
    });
}

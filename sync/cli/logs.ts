/**
 * `kubedev logs --name N [-f] [--tail N]`: the dev container's log — the dev process's output, its
 * hooks' output and the supervisor's `[kubedev] ...` lines (started, crashed, hook ... failed).
 */
import { Command, InvalidArgumentError } from 'commander';
import { loadTarget, TargetOptions } from '../attach/record';
import { ProcessLog } from '../attach/process';
import { targetOptions } from './target-options';

interface LogsFlags extends TargetOptions {
  readonly follow?: boolean;
  readonly tail: number;
}

function lines(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < -1) throw new InvalidArgumentError(`'${value}' is not a number of lines (-1 for all).`);
  return n;
}

export function registerLogs(program: Command): void {
  targetOptions(program.command('logs').description("Print the dev process's output (and its hooks' and the supervisor's events); -f to follow"))
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('--tail <lines>', 'how many recent lines to print first (-1: all)', lines, 200)
    .action(async (opts: LogsFlags) => {
      const { record } = await loadTarget(opts);
      const log = new ProcessLog(record, { context: opts.context, tail: opts.tail, follow: opts.follow === true });
      const ended = new Promise<{ code: number | null; stderr: string }>((resolve) => log.once('end', resolve));
      log.on('line', (line) => process.stdout.write(`${line}\n`));
      const stop = (): void => void log.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      log.start();
      const { code, stderr } = await ended;
      process.removeListener('SIGINT', stop);
      if (code !== 0) throw new Error(`cannot read the log of ${record.namespace}/${record.pod ?? record.name} (${stderr.trim() || `kubectl exit ${String(code)}`}). Check the pod runs: kubedev up --name ${record.name}`);
    });
}

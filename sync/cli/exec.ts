/**
 * `kubedev exec --name N [-i] [-t] -- CMD...`: a command in the dev container, through `kubectl exec`
 * (exit code, signals and, with -it, the terminal exactly as kubectl exec gives them).
 */
import { Command } from 'commander';
import { UsageError } from '../errors';
import { loadTarget, TargetOptions } from '../attach/record';
import { execInDev } from '../attach/shell';
import { targetOptions } from './target-options';

interface ExecFlags extends TargetOptions {
  readonly stdin?: boolean;
  readonly tty?: boolean;
}

export function registerExec(program: Command): void {
  targetOptions(program.command('exec').description('Run a command in the dev container (after --); -it for an interactive one, e.g. kubedev exec --name api -it -- bash'))
    .argument('[command...]', 'the command and its arguments, after --')
    .option('-i, --stdin', 'pass stdin to the command')
    .option('-t, --tty', 'allocate a terminal (needs one on stdin; use with -i)')
    .action(async (command: string[], opts: ExecFlags) => {
      if (command.length === 0) throw new UsageError(`no command: give it after --, e.g. kubedev exec --name ${opts.name ?? 'api'} -- npm test`);
      if (opts.tty && process.stdin.isTTY !== true) throw new UsageError('-t (--tty) needs a terminal on stdin; leave -t out when piping or scripting');
      const { record } = await loadTarget(opts);
      const code = await execInDev(record, command, { stdin: opts.stdin === true, tty: opts.tty === true, context: opts.context });
      if (code !== 0) process.exitCode = code;
    });
}

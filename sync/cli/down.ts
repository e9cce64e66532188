/**
 * `kubedev down --name N [--volumes [--yes]]`: end the session and undo what `up` changed — the
 * running `up` stops (its mirror and forwards), the dev process stops; with --volumes the environment
 * is scaled to 0 and its PVCs (workspace, caches) are deleted, after confirmation or --yes.
 */
import * as readline from 'node:readline/promises';
import { Command } from 'commander';
import { UsageError } from '../errors';
import { loadTarget, TargetOptions } from '../attach/record';
import { deleteVolumes, endSession, stopDevProcess } from '../attach/leave';
import { release } from '../attach/takeover';
import { targetOptions } from './target-options';

interface DownFlags extends TargetOptions {
  readonly volumes?: boolean;
  readonly yes?: boolean;
}

async function confirm(question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export function registerDown(program: Command): void {
  targetOptions(program.command('down').description("End kubedev up for an environment and stop its dev process; --volumes also deletes its volumes (asks, or --yes)"))
    .option('--volumes', "also scale the environment to 0 and delete its PersistentVolumeClaims (the workspace and caches: their data is lost)")
    .option('--yes', 'with --volumes: do not ask')
    .action(async (opts: DownFlags) => {
      if (opts.yes && !opts.volumes) throw new UsageError('--yes only confirms --volumes; pass both, or neither');
      if (opts.volumes && !opts.yes && process.stdin.isTTY !== true) {
        throw new UsageError('--volumes deletes the workspace and caches; with no terminal to ask on, confirm with --yes');
      }
      const { record } = await loadTarget(opts);
      const id = `${record.namespace}/${record.name}`;
      if (opts.volumes && !opts.yes && !(await confirm(`Delete the volumes of ${id} (workspace and caches; their data is lost)? [y/N] `))) {
        process.stderr.write('kubedev: nothing deleted\n');
        return;
      }
      const pid = await endSession(record);
      process.stderr.write(`kubedev: ${pid === undefined ? `no kubedev up was running for ${id}` : `stopped kubedev up (pid ${pid})`}\n`);
      const stopped = await stopDevProcess(record, { context: opts.context });
      process.stderr.write(`kubedev: ${stopped ? 'stopped the dev process' : 'no dev process was running (no pod, or no supervisor)'}\n`);
      // Replace mode: the twin parked and the original's count restored from kubedev.io/replicas.
      if (record.takeOver) process.stderr.write(`kubedev: ${(await release(record, { context: opts.context })).message}\n`);
      if (opts.volumes) {
        await deleteVolumes(record, { context: opts.context });
        process.stderr.write(`kubedev: scaled ${record.workload.kind} ${record.workload.name} to 0 and deleted its volumes; apply the environment again to recreate them\n`);
      }
    });
}

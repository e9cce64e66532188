/**
 * The flags that find an environment, shared by the commands that reach one (exec, logs, down):
 * `--env FILE` (a synthesized YAML) or `--namespace NS` (the live cluster), `--name`, `--context`.
 */
import { Command } from 'commander';

export function targetOptions(cmd: Command): Command {
  return cmd
    .option('--env <file>', 'a synthesized YAML file holding the environment (e.g. dist/app.k8s.yaml)')
    .option('--namespace <ns>', 'look the environment up on the live cluster, in this namespace (instead of --env)')
    .requiredOption('--name <name>', "the environment's name")
    .option('--context <ctx>', 'kubectl context to use');
}


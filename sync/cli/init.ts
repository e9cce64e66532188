/**
 * `kubedev init`: scaffold a cdk8s app or a Pulumi program that uses kubedev, in a new folder or next
 * to what a repository already holds (an existing file is never replaced). The work is in
 * sync/init/scaffold.ts; the files are in sync/init/templates.ts.
 */
import { Command, Option } from 'commander';
import { DEFAULT_OWNER, InitOptions, describeInit, scaffold } from '../init/scaffold';
import { ENGINES } from '../init/templates';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('Scaffold a project that uses kubedev: a cdk8s app (cdk8s.yaml, main.ts) or a Pulumi program (Pulumi.yaml, index.ts, a stack). Existing files are kept.')
    .addOption(new Option('--engine <engine>', 'the engine the project uses').choices(ENGINES).makeOptionMandatory())
    .option('--dir <dir>', 'the folder to write into, made if missing (default: the current folder)')
    .option('--name <name>', "the project's name, a DNS label (default: the folder's name)")
    .option('--team <team>', "the team; its namespace is team-<team> (default: the project's name)")
    .option('--owner <user>', "the sample environment's owner, as the cluster authenticates them", DEFAULT_OWNER)
    .action((opts: InitOptions) => {
      process.stderr.write(describeInit(scaffold(opts)));
    });
}

/**
 * The `kubedev` command line. Each subcommand lives in sync/cli/<name>.ts and registers itself
 * here; this file only wires them and maps errors to exit codes (0 done, 2 usage, 1 run time).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerSync } from './sync';
import { registerKeys } from './keys';
import { registerUp } from './up';
import { registerExec } from './exec';
import { registerLogs } from './logs';
import { registerDown } from './down';
import { registerInit } from './init';
import { registerConflicts } from './conflicts';
import { ConfigError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from '../errors';

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from '../errors';

/** kubedev's own version, read from the package.json above this file (source or build/). */
function packageVersion(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}

/** Builds the program; exported for tests. */
export function program(): Command {
  const cmd = new Command('kubedev')
    .description('Development environments for Kubernetes, as code; live file sync into them.')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride();
  registerSync(cmd);
  registerKeys(cmd);
  registerUp(cmd);
  registerExec(cmd);
  registerLogs(cmd);
  registerDown(cmd);
  registerInit(cmd);
  registerConflicts(cmd);
  return cmd;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const cmd = program();
  try {
    await cmd.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (e instanceof UsageError || e instanceof ConfigError) {
      process.stderr.write(`kubedev: ${e.message}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`kubedev: ${(e as Error).message ?? String(e)}\n`);
    return EXIT_FAILURE;
  }
}

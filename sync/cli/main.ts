/**
 * The `kubedev` command line. Each subcommand lives in sync/cli/<name>.ts and registers itself
 * here; this file only wires them and maps errors to exit codes (0 done, 2 usage, 1 run time).
 *
 * Start-up is part of every command's time: only the module of the command named on the line is
 * loaded (all of them for top-level help or an unknown command, so commander lists and suggests).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, NotServed, RunFailed, UsageError } from '../errors';

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from '../errors';

/** kubedev's own version, read from the package.json above this file (source or build/). */
function packageVersion(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}

/** Each subcommand's module, loaded only when needed (its register function's name is `register<Name>`). */
const COMMANDS: Readonly<Record<string, () => (program: Command, io?: CliIo) => void>> = {
  /* eslint-disable @typescript-eslint/no-require-imports -- lazy on purpose: a command loads only its own modules */
  sync: () => (require('./sync') as typeof import('./sync')).registerSync,
  keys: () => (require('./keys') as typeof import('./keys')).registerKeys,
  up: () => (require('./up') as typeof import('./up')).registerUp,
  exec: () => (require('./exec') as typeof import('./exec')).registerExec,
  logs: () => (require('./logs') as typeof import('./logs')).registerLogs,
  down: () => (require('./down') as typeof import('./down')).registerDown,
  init: () => (require('./init') as typeof import('./init')).registerInit,
  conflicts: () => (require('./conflicts') as typeof import('./conflicts')).registerConflicts,
  /* eslint-enable @typescript-eslint/no-require-imports */
};

/**
 * Builds the program; exported for tests. With `argv`, a command named first registers alone (the
 * others' modules are not loaded); without, or for anything else, every command registers.
 */
export function program(argv?: readonly string[], io?: CliIo): Command {
  const cmd = new Command('kubedev')
    .description('Development environments for Kubernetes, as code; live file sync into them.')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride();
  if (io) cmd.configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });
  const first = argv?.[0];
  const only = first !== undefined && Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
  for (const name of only) COMMANDS[name]()(cmd, io);
  return cmd;
}

/**
 * Where a run's output goes: the process's own streams, or (in the agent, sync/agent/server.ts) a
 * client's. Only `sync` runs there; its signal stops the run as SIGINT would.
 */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly signal?: AbortSignal;
  /** The agent: only `sync --once` runs (anything else throws NotServed, nothing written). */
  readonly onlyOnce?: boolean;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[], io?: CliIo): Promise<number> {
  const stderr = io?.stderr ?? process.stderr;
  const cmd = program(argv, io);
  try {
    await cmd.parseAsync([...argv], { from: 'user' });
    if (io) return EXIT_OK;
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (e) {
    if (e instanceof RunFailed) return e.code;
    if (e instanceof NotServed) throw e;
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (e instanceof UsageError || e instanceof ConfigError) {
      stderr.write(`kubedev: ${e.message}\n`);
      return EXIT_USAGE;
    }
    stderr.write(`kubedev: ${(e as Error).message ?? String(e)}\n`);
    return EXIT_FAILURE;
  }
}

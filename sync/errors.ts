/**
 * Errors shared by the runner's parts and its commands (no command imports the CLI's entry file for
 * them). UsageError (a flag) and ConfigError (a file the user wrote) both exit 2, found before anything
 * was written.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Exit codes of every kubedev command. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** An error the user caused (bad flag, bad config): exit 2, message only, no stack. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A run for another process (the agent's client) ended with this exit code; its words are already out. */
export class RunFailed extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = 'RunFailed';
  }
}

/** The agent does not serve this run (it would not end by itself: no --once after parsing); the client runs it. */
export class NotServed extends Error {
  constructor() {
    super('not a run the agent serves');
    this.name = 'NotServed';
  }
}

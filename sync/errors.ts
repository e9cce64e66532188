/**
 * Errors shared by the runner's parts and its commands (no command imports the CLI's entry file for
 * them). A ConfigError is the user's configuration, found before anything was written: exit 2.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `kubedev sync`: mirror local folders into an environment over SSH. (Placeholder until the runner lands.) */
import { Command } from 'commander';

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('Mirror local files into a dev environment over SSH (one-way, local wins).')
    .action(() => {
      throw new Error('kubedev sync is not implemented yet.');
    });
}

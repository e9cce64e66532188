/** Runs the kubedev CLI from the TypeScript sources (the e2e suite needs no build): node --import tsx e2e/kubedev-cli.ts ARGS. */
import { main } from '../sync/cli/main';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`kubedev: ${err.message}\n`);
    process.exitCode = 1;
  },
);

#!/usr/bin/env node
'use strict';
// Entry point of the `kubedev` command. The installed package ships the compiled build/; in a checkout
// of the repository, `npm ci` (the `prepare` script) or `npm run build` makes it. This file only loads it.
let cli;
try {
  cli = require('../build/sync/cli/main.js');
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes('build/sync/cli/main.js')) {
    process.stderr.write("kubedev: the compiled sources are missing (build/sync/cli/main.js). Run 'npm run build' in the kubedev folder.\n");
    process.exit(2);
  }
  throw e;
}
cli.main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`kubedev: ${err && err.message ? err.message : err}\n`); process.exitCode = 1; },
);

#!/usr/bin/env node
'use strict';
// Entry point of the `kubedev` command. The installed package ships the compiled build/; in a checkout
// of the repository, `npm ci` (the `prepare` script) or `npm run build` makes it. This file only loads it.
const argv = process.argv.slice(2);
// `--version` alone needs none of the CLI: answered from package.json (start-up is what users wait on).
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`${require('../package.json').version}\n`);
  return;
}
// `kubedev sync --once` goes to the user's agent when one listens (build/sync/agent/): it keeps the
// SSH connection and the compiled code of the last runs, so this process only relays. Without one, the
// run happens here and leaves an agent for the next run (KUBEDEV_AGENT=off: never).
if (argv[0] === 'sync' && argv.includes('--once')) {
  let agent;
  try {
    agent = require('../build/sync/agent/client.js');
  } catch {
    agent = undefined; // no build yet: runHere says so
  }
  if (agent && agent.servable(argv)) {
    agent.viaAgent(argv).then((o) => {
      if ('code' in o) process.exitCode = o.code;
      else runHere((code) => (code === 0 && o.here !== 'declined' ? agent.leaveAgent(argv) : undefined));
    });
    return;
  }
}
runHere();

/** Runs the command in this process; `after` sees its exit code. */
function runHere(after) {
  // Compiled code is kept between runs in the user's cache folder (a cold start compiles every module
  // again): Node >= 22.1's own cache, V8's cached data on older Node (build/sync/cli/compile-cache.js).
  // Failures (read-only cache folder, no build yet) only mean no cache.
  try {
    require('../build/sync/cli/compile-cache.js').enableCompileCache();
  } catch {
    // no cache: start-up as before
  }
  // `kubedev sync --once` on a machine with cores to spare walks the local folder in a worker thread:
  // started now, its start-up overlaps the loading below (build/sync/engine/scan-thread.js). Unused,
  // it holds nothing up.
  if (argv[0] === 'sync' && argv.includes('--once')) {
    try {
      require('../build/sync/engine/scan-thread.js').prestartScanThread();
    } catch {
      // the session starts its thread later
    }
  }
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
  cli.main(argv).then(
    (code) => {
      process.exitCode = code;
      if (after) after(code);
    },
    (err) => { process.stderr.write(`kubedev: ${err && err.message ? err.message : err}\n`); process.exitCode = 1; },
  );
}

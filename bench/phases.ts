/**
 * Where the time of a `kubedev` process goes: preloaded with `node -r build/bench/phases.js
 * bin/kubedev.js sync ...` and KUBEDEV_BENCH_PHASES=<file>, it notes (performance.now(), ms since the
 * process started) when node hands over, when the CLI's modules are loaded, and the start and end of
 * the engine's steps: the SSH handshake (Connection.open), the remote preparation, the local scan, the
 * remote listing and the transfer (applyPlan); at exit it writes them to the file as JSON.
 * It wraps exported functions of the compiled engine from outside; the engine is not changed.
 */
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';

type Marks = Array<[string, number]>;
const marks: Marks = [['node ready', performance.now()]];
const out = process.env.KUBEDEV_BENCH_PHASES;
const build = path.resolve(__dirname, '..');

function mark(name: string): void {
  marks.push([name, performance.now()]);
}

function wrap(obj: Record<string, unknown> | undefined, key: string, label: string): void {
  const f = obj?.[key];
  if (!obj || typeof f !== 'function') {
    mark(`(not found: ${label})`);
    return;
  }
  obj[key] = function (this: unknown, ...args: unknown[]): unknown {
    mark(`${label} start`);
    const r = (f as (...a: unknown[]) => unknown).apply(this, args);
    if (r instanceof Promise) {
      return r.then(
        (v) => (mark(`${label} end`), v),
        (e) => {
          mark(`${label} end`);
          throw e;
        },
      );
    }
    mark(`${label} end`);
    return r;
  };
}

const TARGETS: Record<string, (exp: Record<string, unknown>) => void> = {
  'sync/engine/transport.js': (e) => wrap(e.Connection as Record<string, unknown>, 'open', 'ssh handshake'),
  'sync/engine/remote.js': (e) => {
    wrap(e, 'prepareRemote', 'remote prepare');
    wrap(e, 'listRemote', 'remote listing');
    wrap(e, 'prepareAndList', 'remote prepare+listing');
  },
  'sync/engine/tree.js': (e) => {
    wrap(e, 'scanLocalSync', 'local scan');
    wrap(e, 'scanLocal', 'local scan');
  },
  'sync/engine/scan-thread.js': (e) => wrap(e, 'scanInThread', 'local scan'),
  'sync/engine/apply.js': (e) => wrap(e, 'applyPlan', 'transfer'),
};

if (out) {
  const pending = new Map(Object.entries(TARGETS).map(([rel, f]) => [path.join(build, rel), f]));
  const main = path.join(build, 'sync/cli/main.js');
  const M = Module as unknown as { _load: (...a: unknown[]) => unknown };
  const load = M._load;
  M._load = function (this: unknown, ...args: unknown[]): unknown {
    const exp = load.apply(this, args);
    for (const [file, patch] of pending) {
      const m = require.cache[file];
      if (m?.loaded) {
        pending.delete(file);
        patch(m.exports as Record<string, unknown>);
      }
    }
    if (require.cache[main]?.loaded && !marks.some(([n]) => n === 'cli loaded')) mark('cli loaded');
    return exp;
  };
  process.on('exit', () => {
    mark('exit');
    fs.writeFileSync(out, JSON.stringify(marks));
  });
}

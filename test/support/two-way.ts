/** Helpers for the two-way suites: passes run as fresh sessions (a restart each), remote edits as the sshd user. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ConflictRecord, TwoWayOptions, TwoWaySession } from '../../sync/engine/two-way';
import { Arena } from './hostile';
import { Sshd } from './sshd';
import { tempDir } from './trees';

/** Runs `script` (sh) in the remote root as the sshd user, as a process in the container would. */
export function remote(sshd: Sshd, a: Arena, script: string): string {
  return execFileSync('setpriv', [`--reuid=${sshd.uid}`, `--regid=${sshd.gid}`, '--clear-groups', '--', 'sh', '-c', `mkdir -p "$1" && cd "$1" && ${script}`, 'sh', a.remote], { encoding: 'utf8' });
}

export interface PassResult {
  readonly conflicts: ConflictRecord[];
  readonly warnings: string[];
}

/** A state folder per arena (the user's state folder stands in for XDG_STATE_HOME). */
const stateFiles = new WeakMap<Arena, string>();
export function stateFileOf(a: Arena): string {
  let f = stateFiles.get(a);
  if (!f) {
    f = path.join(tempDir('two-way-state'), 'state.json');
    stateFiles.set(a, f);
  }
  return f;
}

export function twoWay(sshd: Sshd, a: Arena, extra: Partial<TwoWayOptions> = {}): TwoWaySession {
  return new TwoWaySession({ localRoot: a.local, remoteRoot: a.remote, host: sshd.host, port: sshd.port, user: sshd.user, identity: sshd.identity, knownHosts: sshd.knownHosts, mode: 'two-way', stateFile: stateFileOf(a), ...extra });
}

/** One two-way pass by a fresh session (as `kubedev sync --mode two-way --once`, a restart each time). */
export async function pass(sshd: Sshd, a: Arena, extra: Partial<TwoWayOptions> = {}): Promise<PassResult> {
  const s = twoWay(sshd, a, { watch: false, ...extra });
  const conflicts: ConflictRecord[] = [];
  const warnings: string[] = [];
  s.on('conflict', (c) => conflicts.push(c));
  s.on('warning', (w) => warnings.push(w));
  try {
    await s.start();
  } finally {
    await s.close();
  }
  return { conflicts, warnings };
}

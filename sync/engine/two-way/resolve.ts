/**
 * Resolving conflicts (`kubedev conflicts --take local|remote PATH...`): the ancestor of each path is set
 * so that the chosen side reads as the only one changed, the conflict record goes, and one two-way pass
 * carries it out (take local: the local version is sent, or the remote deleted; take remote: the remote
 * version is fetched over the local file, or the local one deleted). The copy of the remote version
 * is removed once the pass is done. A side that changed again since the conflict was found makes it a
 * conflict again, reported as such: nothing chosen blindly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkedParent } from './local-write';
import { TwoWayOptions, TwoWaySession } from './session';
import { ConflictRecord, StateStore, statePath } from './state-store';

export function stateOf(o: TwoWayOptions): StateStore {
  return new StateStore(o.stateFile ?? statePath(o), o);
}

/** The open conflicts of a folder pair (read from its state file; nothing is contacted). */
export function listConflicts(o: TwoWayOptions): ConflictRecord[] {
  return stateOf(o).conflicts();
}

/** Takes one side for each of `rels` (each must be an open conflict) and runs a pass. */
export async function takeSide(o: TwoWayOptions, side: 'local' | 'remote', rels: readonly string[], options: { signal?: AbortSignal } = {}): Promise<ConflictRecord[]> {
  const store = stateOf(o);
  const taken: ConflictRecord[] = [];
  for (const rel of rels) {
    const c = store.conflict(rel);
    if (!c) throw new Error(`'${rel}' is not in conflict`);
    store.clearConflict(rel);
    taken.push(c);
  }
  store.save();
  // The pass sets the ancestors below each path once it has listed both sides (applyTake).
  const s = new TwoWaySession({ ...o, watch: false, take: new Map(rels.map((r) => [r, side])) });
  try {
    await s.start(options);
  } finally {
    await s.close();
  }
  for (const c of taken) {
    if (!c.copy) continue;
    try {
      const abs = path.join(checkedParent(o.localRoot, c.copy), path.basename(c.copy));
      if (fs.lstatSync(abs).isFile()) fs.unlinkSync(abs);
    } catch {
      // gone already, or no longer a plain file: left alone
    }
  }
  return taken;
}

/**
 * Two-way sync (see session.ts): one session per folder, chosen by the folder's mode.
 */
import { SyncOptions, SyncSession } from '../session';
import { TwoWayOptions, TwoWaySession } from './session';

export { TwoWaySession } from './session';
export type { TwoWayOptions, TwoWayEvents, TwoWayStats } from './session';
export { RemoteRootHaltError } from './reconcile';
export { StateStore, statePath, stateDir } from './state-store';
export type { ConflictRecord } from './state-store';

/** The session for a folder: a mirror (SyncSession) or two-way (TwoWaySession). */
export function createSession(o: SyncOptions | TwoWayOptions): SyncSession | TwoWaySession {
  return o.mode === 'two-way' ? new TwoWaySession(o) : new SyncSession(o);
}
export { listConflicts, takeSide } from './resolve';

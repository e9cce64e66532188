/** The public shapes of a sync session: its options, the stats of a batch, and its events. */
import { BackendFactory, WatchChoice } from './watch';

export interface SyncOptions {
  /** Local folder to mirror. */
  readonly localRoot: string;
  /** Absolute remote folder. */
  readonly remoteRoot: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Private key file. */
  readonly identity: string;
  /** known_hosts file the server's key must be listed in. */
  readonly knownHosts: string;
  /** Extra gitignore-syntax patterns. @default [] */
  readonly ignore?: readonly string[];
  /** Keep watching after the first mirror. @default true */
  readonly watch?: boolean;
  /** Events are gathered this long before a batch starts. @default 5 */
  readonly coalesceMs?: number;
  /**
   * Force the transfer method (benchmarks, tests): `sftp` never uses the remote helper, `helper` uses it
   * for every file it can carry whatever the round trip. @default chosen by batch size and round trip
   */
  readonly method?: 'tar' | 'sftp' | 'helper';
  /** Connection attempts before giving up when the first connection fails. @default 4 */
  readonly initialAttempts?: number;
  /** Longest wait between reconnection attempts. @default 10000 */
  readonly maxBackoffMs?: number;
  /**
   * A batch that makes no progress (no byte sent, no step finished) for this long is abandoned: the
   * connection is dropped and a full pass runs, with a warning naming what hung. @default 60000
   */
  readonly stallMs?: number;
  /**
   * After a reconnect's full pass, the one more full pass this much later that removes what the lost
   * connection's server processes wrote late (follow-up.ts; watching only). @default 3000
   */
  readonly recheckMs?: number;
  // ---- two-way (sync/engine/two-way/; SyncSession itself only mirrors) ----
  /** `two-way` is run by TwoWaySession (see createSession in two-way/index.ts). @default 'mirror' */
  readonly mode?: 'mirror' | 'two-way';
  /** gitignore-syntax patterns that flow only remote -> local (two-way). @default [] */
  readonly remoteOwns?: readonly string[];
  /** gitignore-syntax patterns that flow only local -> remote (two-way). @default [] */
  readonly localOwns?: readonly string[];
  /** Watch backend (`--watch`); see watch/index.ts. @default 'auto' */
  readonly watchBackend?: WatchChoice;
  /** @internal Tests: a backend factory (the misbehaving fake) and a wall clock to move. */
  readonly watchTest?: { readonly factory?: BackendFactory; readonly now?: () => number };
  /**
   * Folder of the changed-blocks cache (block-cache.ts: large files the runner last put in place, so the
   * server need not hash them again); false: none. @default `$XDG_STATE_HOME/kubedev/blocks`
   */
  readonly blockCache?: string | false;
  /** Periodic cheap rescan interval. @default scaled to the scan cost, at least 2 minutes (watch/guard.ts) */
  readonly rescanMs?: number;
  /** Polling interval with the poll backend. @default scaled to the scan cost, at least 2 s */
  readonly pollMs?: number;
}

export interface BatchStats {
  /** Files, folders and symlinks written. */
  readonly files: number;
  readonly deleted: number;
  readonly bytes: number;
  readonly ms: number;
  readonly method: 'tar' | 'sftp' | 'none';
  /**
   * The paths the batch wrote (files, folders, links, mode changes) and deleted, relative to the root
   * (for onSync hooks); undefined when more than MAX_PATHS changed (treat as "anything may have changed").
   */
  readonly paths?: readonly string[];
}

export interface SyncEvents {
  connected: [info: { host: string; port: number; fingerprint?: string }];
  /** The first mirror is complete. */
  ready: [stats: BatchStats & { total: number }];
  /** A batch reached the remote. */
  synced: [stats: BatchStats];
  /** Bytes sent so far in the batch under way, of about `total` (tar headers included); throttled. */
  progress: [info: { sent: number; total: number; files: number }];
  /** The connection dropped; retrying after `delayMs`. */
  reconnecting: [info: { attempt: number; delayMs: number; reason: string }];
  warning: [message: string];
  /** Fatal: the session stopped. */
  error: [err: Error];
}

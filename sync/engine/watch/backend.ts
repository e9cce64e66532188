/**
 * The one interface every watch backend implements (per-folder inotify, `@parcel/watcher`, Node's
 * recursive fs.watch, polling, and the misbehaving fake of the contract suite). A backend only reports
 * hints: paths that may have changed, or a folder (or the whole tree) it lost track of. It never says
 * what changed; the session looks again and compares with its index (see guard.ts and rescan.ts).
 */
import type { EventEmitter } from 'node:events';

export interface WatchEvents {
  /** POSIX paths relative to the root that may have changed. */
  dirty: [rels: string[]];
  /**
   * Paths reported created (recursive backends only): a new folder among them is looked at again a
   * moment later, as files made in it before the backend watched it may never be reported.
   */
  created: [rels: string[]];
  /** The backend lost track of folder `rel` ('' = the whole tree): overflow, a null name, an error. */
  rescan: [rel: string, reason: string];
  /** A problem the user should know of (a folder that cannot be watched). */
  warning: [message: string];
  /** The backend cannot go on (e.g. the inotify watch limit); the session stops. */
  error: [err: Error];
}

export interface WatchBackend extends EventEmitter<WatchEvents> {
  /** As `--watch` names it. */
  readonly name: string;
  /** One watch of the root covers the tree (add/removeTree do nothing). */
  readonly recursive: boolean;
  /** Reports nothing: the guard rescans often instead. */
  readonly polls: boolean;
  /** Starts watching the root; resolves once events are being delivered. Called before the first scan. */
  start(): Promise<void>;
  /** Folder `rel` ('' = the root) is about to be listed: a per-folder backend watches it first. */
  add(rel: string): void;
  /** Folder `rel` and everything below it are gone or moved away. */
  removeTree(rel: string): void;
  /** Idempotent. */
  close(): Promise<void>;
}

/** What `--watch` accepts; 'auto' picks by platform and file system (see index.ts). */
export const WATCH_CHOICES = ['auto', 'per-folder', 'parcel', 'recursive', 'poll'] as const;
export type WatchChoice = (typeof WATCH_CHOICES)[number];

/** Makes a backend for `root`; `ignoredDirs` are absolute folders not worth watching (pruned ignores). */
export type BackendFactory = (root: string, ignoredDirs: readonly string[]) => WatchBackend;

/** POSIX path of `abs` relative to `root`, or undefined when it is outside (or the root itself). */
export function relOf(root: string, abs: string, sep: string): string | undefined {
  if (!abs.startsWith(root + sep)) return undefined;
  const rel = abs.slice(root.length + 1);
  return sep === '/' ? rel : rel.split(sep).join('/');
}

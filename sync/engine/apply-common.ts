/**
 * What both ways of applying a plan share (apply.ts chooses the way). Two ways, chosen by batch size:
 * - bulk (apply-tar.ts): one tar stream over one exec channel into a staging folder beside the files,
 *   then each new item moved into place with one rename: nobody sees a half-written file.
 * - SFTP (apply-sftp.ts): pipelined requests, each file written to a temporary name and renamed over
 *   the target (posix-rename), for single edits and medium batches.
 * Deletes and mode changes go through remote-fix.ts (never through a folder the server made a symlink).
 *
 * Bytes sent are bytes read: a file that cannot be read, or changes size while it is sent, is never
 * put in place padded or cut. It is reported `unsent` (the remote copy stays as it was) and, when it
 * changed, `changed` (look at it again).
 *
 * Read-only folders: a remote folder whose mode lacks u+rwx is opened (u+rwx) for the batch and given its
 * final mode last, deepest first; so a 0555 folder with contents mirrors like any other.
 */
import { BlockCache } from './block-cache';
import type { EarlyRemote, EarlySums } from './delta-early';
import { Plan, PlanItem } from './plan';
import { movedFrom, RemoteRootMovedError } from './remote-place';
import { Connection, RemoteError } from './transport';
import { Entry } from './tree';

/** Writes are merged into chunks of this size before the SSH channel. */
export const COALESCE_BYTES = 256 * 1024;
/** Batches with more files than this (or more bytes than BULK_BYTES) go as one tar stream. */
export const BULK_FILES = 400;
export const BULK_BYTES = 64 * 1024 * 1024;
/** SFTP requests (files) in flight. */
export const SFTP_PARALLEL = 48;
/** Longest shell command line a script builds (well below every ARG_MAX). */
const MAX_COMMAND = 96 * 1024;
/** The owner's read, write and search bits: what the runner needs on a folder it writes into. */
export const OWNER_RWX = 0o700;

export interface ApplyResult {
  /** Files whose local copy changed while it was being sent (or vanished): look at them again. */
  readonly changed: string[];
  /** Files, links and folders of the plan that are NOT on the remote as planned: keep their old index entry. */
  readonly unsent: string[];
  /** What the user should know (an unreadable file, skipped). */
  readonly warnings: string[];
  readonly bytes: number;
  readonly method: 'tar' | 'sftp' | 'none';
}

export interface ApplyContext {
  readonly conn: Connection;
  readonly localRoot: string;
  readonly remoteRoot: string;
  /** What the remote holds now (to know which parents exist). */
  readonly remote: { get(rel: string): Entry | undefined };
  readonly signal?: AbortSignal;
  /** Force a method (benchmarks, tests; `helper`: SFTP's way with the remote helper whatever the round trip). */
  readonly method?: 'tar' | 'sftp' | 'helper';
  /** Gzip the bulk archive: true, false, or undefined to decide by the round trip (apply-tar.ts). */
  readonly compress?: boolean;
  /** false for a one-shot run (`--once`): no remote helper is started, as no save will follow. */
  readonly watching?: boolean;
  /** Told of bytes as they are sent (progress display). */
  readonly onBytes?: (n: number) => void;
  /** Told what the batch is doing now (the stall watchdog names it). */
  readonly onStep?: (what: string) => void;
  /**
   * Lets the batch go that much longer than the stall limit without progress, until the returned
   * function is called (server work that prints nothing, as long as a large file: delta.ts). Each
   * transfer holds its own; the watchdog allows the largest held.
   */
  readonly allowQuiet?: (ms: number) => () => void;
  /**
   * Told of a folder to delete that was left because the server kept writing into it (remote-fix.ts):
   * the session warns (busyWarning) and keeps it in the index.
   */
  readonly onBusy?: (rel: string) => void;
  /** What the runner last put in place by changed blocks, for this server and root (none: always hash). */
  readonly blockCache?: BlockCache;
  /** Local block sums of large files started before the listing (delta-early.ts). */
  readonly earlySums?: EarlySums;
  /** The server's copies and block hashes begun before the listing (delta-early.ts); the first pass only. */
  readonly earlyRemote?: EarlyRemote;
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

export function rp(rel: string): string {
  return rel === '' ? '.' : `./${rel}`;
}

/** Lines of `cmd -- arg arg ...`, each under MAX_COMMAND. */
export function chunked(prefix: string, args: string[], suffix = ''): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let len = 0;
  for (const a of args) {
    if (len + a.length + 1 > MAX_COMMAND && cur.length > 0) {
      out.push(`${prefix} ${cur.join(' ')}${suffix}`);
      cur = [];
      len = 0;
    }
    cur.push(a);
    len += a.length + 1;
  }
  if (cur.length > 0) out.push(`${prefix} ${cur.join(' ')}${suffix}`);
  return out;
}

/** The plan's mode changes that may run before the writes: not those that close a folder (they come last). */
export function earlyChmods(plan: Plan): PlanItem[] {
  return plan.chmods.filter((c) => c.entry.type !== 'dir' || (c.entry.mode & OWNER_RWX) === OWNER_RWX);
}

/** Explains a failed remote command in the user's terms. */
export function remoteFailure(what: string, remoteRoot: string, code: number | null, stderr: string): RemoteError {
  const moved = movedFrom(code, stderr);
  if (moved) return new RemoteRootMovedError(remoteRoot, moved.listed, moved.now);
  const text = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(0, 4).join('; ');
  let hint = `Check the remote folder '${remoteRoot}'`;
  if (/No space left|Disk quota|Wrote only \d+ of \d+ bytes/i.test(stderr)) hint = `The remote disk holding '${remoteRoot}' is full: free space there (or enlarge the workspace volume)`;
  else if (/Permission denied|Operation not permitted|Read-only file system/i.test(stderr)) hint = `The remote user cannot write there: fix the owner or mode of '${remoteRoot}' or pass a --remote the user owns`;
  else if (/Not a directory|File exists/i.test(stderr)) hint = `A remote path in the way is a file where a folder is needed: remove it, or pick another --remote`;
  return new RemoteError(`${what} failed on the remote (exit ${code ?? 'signal'}): ${text || 'no message'}. ${hint}.`, code, stderr);
}

/** The mode a folder is created with: its own, plus u+rwx until its contents are in (see withWritableParents). */
export function creationMode(mode: number): number {
  return mode | OWNER_RWX;
}

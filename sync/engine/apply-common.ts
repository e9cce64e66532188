/**
 * What both ways of applying a plan share (apply.ts chooses the way). Two ways, chosen by batch size:
 * - bulk (apply-tar.ts): one tar stream over one exec channel into a staging folder beside the files,
 *   then each new item moved into place with one rename: nobody sees a half-written file.
 * - SFTP (apply-sftp.ts): pipelined requests, each file written to a temporary name and renamed over
 *   the target (posix-rename), for single edits and medium batches.
 * Deletes always go as an `sh` script on stdin (`rm -rf -- ...` in chunks): no argv overflow.
 *
 * Bytes sent are bytes read: a file that cannot be read, or changes size while it is sent, is never
 * put in place padded or cut. It is reported `unsent` (the remote copy stays as it was) and, when it
 * changed, `changed` (look at it again).
 *
 * Read-only folders: a remote folder whose mode lacks u+rwx is opened (u+rwx) for the batch and given its
 * final mode last, deepest first; so a 0555 folder with contents mirrors like any other.
 */
import { BlockCache } from './block-cache';
import type { EarlySums } from './delta-early';
import { Plan, PlanItem } from './plan';
import { deleteByHelper } from './remote-helper';
import { Connection, RemoteError } from './transport';
import { Entry, shQuote } from './tree';

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
  /** What the runner last put in place by changed blocks, for this server and root (none: always hash). */
  readonly blockCache?: BlockCache;
  /** Local block sums of large files started before the listing (delta-early.ts). */
  readonly earlySums?: EarlySums;
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

/**
 * `rm -rf` lines: one `rm` process per line of paths (a branch switch deletes thousands: one process each
 * cost seconds); if it fails, each path of the line again, one holding read-only folders opened first
 * (chmod -R u+rwx) and removed again.
 */
export function deleteLines(deletes: readonly string[]): string[] {
  return chunked('set --', deletes.map((d) => shQuote(rp(d))), '; rm -rf -- "$@" 2>/dev/null || for p in "$@"; do rm -rf -- "$p" 2>/dev/null || { chmod -R u+rwx -- "$p" 2>/dev/null; rm -rf -- "$p"; }; done');
}

/** chmod lines for `items`, deepest first (a folder's search bit may be taken away last). */
export function chmodLines(items: readonly PlanItem[], tolerant = false): string[] {
  const byMode = new Map<number, string[]>();
  const deepestFirst = [...items].sort((a, b) => b.rel.split('/').length - a.rel.split('/').length);
  const lines: string[] = [];
  let depth = -1;
  const flush = (): void => {
    for (const [mode, paths] of byMode) lines.push(...chunked(`chmod ${mode.toString(8)} --`, paths, tolerant ? ' 2>/dev/null || true' : ''));
    byMode.clear();
  };
  for (const c of deepestFirst) {
    const d = c.rel.split('/').length;
    if (d !== depth) flush();
    depth = d;
    const l = byMode.get(c.entry.mode) ?? [];
    l.push(shQuote(rp(c.rel)));
    byMode.set(c.entry.mode, l);
  }
  flush();
  return lines;
}

/** The plan's mode changes that may run before the writes: not those that close a folder (they come last). */
export function earlyChmods(plan: Plan): PlanItem[] {
  return plan.chmods.filter((c) => c.entry.type !== 'dir' || (c.entry.mode & OWNER_RWX) === OWNER_RWX);
}

/** Explains a failed remote command in the user's terms. */
export function remoteFailure(what: string, remoteRoot: string, code: number | null, stderr: string): RemoteError {
  const text = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(0, 4).join('; ');
  let hint = `Check the remote folder '${remoteRoot}'`;
  if (/No space left|Disk quota|Wrote only \d+ of \d+ bytes/i.test(stderr)) hint = `The remote disk holding '${remoteRoot}' is full: free space there (or enlarge the workspace volume)`;
  else if (/Permission denied|Operation not permitted|Read-only file system/i.test(stderr)) hint = `The remote user cannot write there: fix the owner or mode of '${remoteRoot}' or pass a --remote the user owns`;
  else if (/Not a directory|File exists/i.test(stderr)) hint = `A remote path in the way is a file where a folder is needed: remove it, or pick another --remote`;
  return new RemoteError(`${what} failed on the remote (exit ${code ?? 'signal'}): ${text || 'no message'}. ${hint}.`, code, stderr);
}

/** Runs an `sh` script in the remote root; throws remoteFailure(what) if it fails. */
export async function remoteScript(ctx: ApplyContext, what: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  ctx.onStep?.(what);
  const script = ['set -e', `cd ${shQuote(ctx.remoteRoot)}`, ...lines, ''].join('\n');
  const r = await ctx.conn.exec('sh -s', script, { signal: ctx.signal });
  if (r.code !== 0) throw remoteFailure(what, ctx.remoteRoot, r.code, r.stderr);
}

/** Deletes remote paths (top-most only) with `rm -rf`, as a script on stdin; read-only parents opened. */
export async function remoteDelete(ctx: ApplyContext, deletes: readonly string[]): Promise<void> {
  if (deletes.length === 0) return;
  await withWritableParents(ctx, { deletes: [...deletes], dirs: [], files: [], links: [], chmods: [] }, () => deleteNow(ctx, deletes));
}

/** The deletes alone (inside a withWritableParents of the caller's): by the remote helper when it is used, else a script. */
export async function deleteNow(ctx: ApplyContext, deletes: readonly string[]): Promise<void> {
  if (await deleteByHelper(ctx, deletes)) return;
  await remoteScript(ctx, 'deleting', deleteLines(deletes));
}

/**
 * Existing remote folders the plan writes into (creates, replaces or deletes a child of) whose mode lacks
 * u+rwx, and plan folders whose final mode lacks it: opened before the batch, given their mode after.
 */
export function foldersToOpen(ctx: ApplyContext, plan: Plan): { open: PlanItem[]; final: PlanItem[] } {
  const open = new Map<string, PlanItem>();
  const final = new Map<string, PlanItem>();
  const looked = new Set<string>(); // each folder is looked at once (a 10,000-file plan shares few parents)
  const consider = (rel: string): void => {
    for (let p = parentOf(rel); p !== '' && !looked.has(p); p = parentOf(p)) {
      looked.add(p);
      const e = ctx.remote.get(p);
      if (e?.type !== 'dir' || (e.mode & OWNER_RWX) === OWNER_RWX) continue;
      open.set(p, { rel: p, entry: { ...e, mode: e.mode | OWNER_RWX } });
      final.set(p, { rel: p, entry: e });
    }
  };
  for (const d of plan.deletes) consider(d);
  for (const list of [plan.dirs, plan.files, plan.links, plan.chmods]) for (const i of list) consider(i.rel);
  // The plan's own folders and folder mode changes end with their final mode (after their contents).
  for (const d of plan.dirs) if ((d.entry.mode & OWNER_RWX) !== OWNER_RWX) final.set(d.rel, d);
  for (const c of plan.chmods) if (c.entry.type === 'dir' && (c.entry.mode & OWNER_RWX) !== OWNER_RWX) final.set(c.rel, c);
  return { open: [...open.values()], final: [...final.values()] };
}

/** Runs `fn` with read-only remote folders of the plan opened, then gives every folder its final mode. */
export async function withWritableParents<T>(ctx: ApplyContext, plan: Plan, fn: () => Promise<T>): Promise<T> {
  const { open, final } = foldersToOpen(ctx, plan);
  if (open.length > 0) await remoteScript(ctx, 'opening read-only folders', chmodLines(open, true).reverse());
  try {
    return await fn();
  } finally {
    if (final.length > 0 && ctx.conn.alive) await remoteScript(ctx, 'setting folder modes', chmodLines(final, true)).catch(() => undefined);
  }
}

/** The mode a folder is created with: its own, plus u+rwx until its contents are in (see withWritableParents). */
export function creationMode(mode: number): number {
  return mode | OWNER_RWX;
}

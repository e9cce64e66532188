/**
 * The SFTP way: deletes (sh), folders by depth, then files and links pipelined. Each file is written to
 * a temporary name beside its target, checked (the server's size of the written file must be the
 * planned size) and renamed over the target; a file that cannot be read, or changes while it is read,
 * leaves its temporary file unlinked and the target as it was.
 */
import { isUtf8 } from 'node:buffer';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { SFTPWrapper, Stats } from 'ssh2';
import { ApplyContext, ApplyResult, creationMode, earlyChmods, SFTP_PARALLEL } from './apply-common';
import { changedSince, LocalReadError, readExactly } from './local-read';
import { Plan, PlanItem } from './plan';
import { deleteNow } from './remote-fix';
import { enterRoot, movedFrom, placeIs, RemoteRootMovedError } from './remote-place';
import { HELPER_BATCH_FILES, helperCanSend, HelperRefused, helperToUse, OutsideRootError, RemoteHelper } from './remote-helper';
import { Connection, ConnectionError, RemoteError } from './transport';
import { shQuote } from './tree';

/** SFTP write requests of this size, this many in flight per large file. */
const SFTP_CHUNK = 32 * 1024;
const SFTP_WINDOW = 64;

export type Call = <T>(fn: (cb: (err: Error | null | undefined, v: T) => void) => void) => Promise<T>;

/**
 * SFTP requests race the connection's loss: ssh2 leaves pending requests unanswered when it drops. Each
 * request registers its own drop listener and removes it when answered (racing every request against
 * one long-lived promise would keep every request's closure alive for the connection's lifetime: the
 * soak test measured +28 MB over 8,000 saves).
 */
export function caller(conn: Connection): Call {
  return <T>(fn: (cb: (err: Error | null | undefined, v: T) => void) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const off = conn.onDrop(reject);
      fn((err, v) => {
        off();
        if (err) reject(err);
        else resolve(v);
      });
    });
}

export function sftpFailure(conn: Connection, remoteRoot: string, what: string, rel: string, e: Error & { code?: number | string }): Error {
  if (!conn.alive) return new ConnectionError(`connection dropped while ${what} '${rel}'`);
  if (e instanceof ConnectionError) return e;
  const code = e.code;
  let hint = `Check the remote folder '${remoteRoot}' (free space, owner, mode)`;
  if (code === 3) hint = `The remote user may not write there: fix the owner or mode of '${remoteRoot}' or pass a --remote the user owns`;
  else if (code === 2) hint = `A remote folder vanished or a path in the way is a file: run again, or check '${remoteRoot}'`;
  else if (code === 4) hint = `The server gives no detail ("Failure"): most often the remote disk is full or a path in the way is a file; check free space in '${remoteRoot}'`;
  return new RemoteError(`${what} '${rel}' failed on the remote (${e.message}). ${hint}.`, typeof code === 'number' ? code : null, e.message);
}

export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

function tempName(remoteAbs: string): string {
  return path.posix.join(path.posix.dirname(remoteAbs), `.kubedev-${crypto.randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Uploads one file; rejects with LocalReadError when it could not be read whole (nothing changed remotely).
 * Round trips for a small file: open; then the writes, the times (fsetstat), the read-back (fstat)
 * and the close, sent together (the server runs them in order, so fstat sees every write); then the
 * rename, only once the read-back matched. Three instead of six; the rename is never sent ahead, or a
 * failed write could still take the target's name.
 */
async function sftpUpload(call: Call, sftp: SFTPWrapper, abs: string, remote: string, item: PlanItem, onBytes?: (n: number) => void, gate?: Promise<void>): Promise<void> {
  const tmp = tempName(remote);
  const mtime = Math.floor(item.entry.mtimeMs / 1000);
  const handle = await call<Buffer>((cb) => sftp.open(tmp, 'w', { mode: item.entry.mode }, cb));
  let closing: Promise<void> | undefined;
  try {
    // Exactly `size` bytes, streamed (never the whole file in memory), up to SFTP_WINDOW writes in flight.
    const inflight = new Set<Promise<void>>();
    let failure: Error | undefined;
    let pos = 0;
    for await (const buf of readExactly(abs, item.rel, item.entry.size)) {
      for (let off = 0; off < buf.length; off += SFTP_CHUNK) {
        const len = Math.min(SFTP_CHUNK, buf.length - off);
        const at = pos + off;
        const p: Promise<void> = call<void>((cb) => sftp.write(handle, buf, off, len, at, (err) => cb(err, undefined))).then(
          () => {
            inflight.delete(p);
            onBytes?.(len);
          },
          (e: Error) => {
            inflight.delete(p);
            failure ??= e;
          },
        );
        inflight.add(p);
        if (inflight.size >= SFTP_WINDOW) await Promise.race(inflight);
        if (failure) throw failure;
      }
      pos += buf.length;
    }
    const times = call<void>((cb) => sftp.fsetstat(handle, { mode: item.entry.mode, atime: mtime, mtime }, (err) => cb(err, undefined)));
    const stat = call<{ size?: number }>((cb) => sftp.fstat(handle, cb));
    closing = call<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)));
    const [, , st] = await Promise.all([Promise.all(inflight), times, stat, closing]);
    if (failure) throw failure;
    // Read back what the server holds before the file takes its name.
    if (st.size !== item.entry.size) throw new RemoteError(`the server holds ${st.size} bytes of '${item.rel}' after writing ${item.entry.size}`, null, '');
    await gate; // the root's check (checkFolders), answered by now: sent with the open
  } catch (e) {
    await (closing ?? call<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)))).catch(() => undefined);
    await call<void>((cb) => sftp.unlink(tmp, (err) => cb(err, undefined))).catch(() => undefined);
    throw e;
  }
  // The last look before the name changes: a file edited while it was sent is not put in place.
  if (changedSince(abs, item.entry)) {
    await call<void>((cb) => sftp.unlink(tmp, (err) => cb(err, undefined))).catch(() => undefined);
    throw new LocalReadError(item.rel, 'changed', '');
  }
  await renameInPlace(call, sftp, tmp, remote, item.rel);
}

/** Something on the server took the target's name since the listing (a folder made there): nothing was replaced. */
class InTheWay extends Error {}

/**
 * Renames the temporary `tmp` over `remote`; the temporary goes if that fails. SFTP's bare "Failure"
 * (status 4) for a folder now in the way (rename(2): EISDIR, ENOTEMPTY) becomes InTheWay.
 */
async function renameInPlace(call: Call, sftp: SFTPWrapper, tmp: string, remote: string, rel: string): Promise<void> {
  await call<void>((cb) => sftp.ext_openssh_rename(tmp, remote, (err) => cb(err, undefined))).catch(async (e: Error & { code?: unknown }) => {
    await call<void>((cb) => sftp.unlink(tmp, (err) => cb(err, undefined))).catch(() => undefined);
    if (e.code === 4 && (await call<Stats>((cb) => sftp.lstat(remote, cb)).catch(() => undefined))?.isDirectory()) throw new InTheWay(rel);
    throw e;
  });
}

/**
 * One file: through the remote helper when it was given (one round trip, remote-helper.ts; requests
 * are pipelined, so not held by `limit`), by SFTP otherwise or when the helper cannot do it (then SFTP
 * writes it again from the start, within `limit`).
 */
async function upload(call: Call, sftp: SFTPWrapper, helper: RemoteHelper | undefined, limit: Limiter, dirsReady: Promise<void>, abs: string, remote: string, item: PlanItem, onBytes?: (n: number) => void, gate?: Promise<void>, beforeFallback?: () => Promise<void>): Promise<void> {
  if (helper) {
    try {
      await helper.write(abs, item);
      onBytes?.(item.entry.size);
      return;
    } catch (e) {
      if (!(e instanceof HelperRefused)) throw e;
    }
    await beforeFallback?.(); // SFTP goes by path: checked as if it had written the file from the start
  }
  await dirsReady;
  await limit.run(() => sftpUpload(call, sftp, abs, remote, item, onBytes, gate));
}

/**
 * Folders through the helper, all requests at once (it makes them in order, parents first); those it
 * could not make go to `sftp` (whose error then names the problem). A parent leading out of the root
 * is an error: SFTP would follow it.
 */
async function helperDirs(helper: RemoteHelper, dirs: readonly PlanItem[], remoteRoot: string, sftp: (dirs: readonly PlanItem[]) => Promise<void>, beforeFallback: () => Promise<void>): Promise<void> {
  const words = await Promise.all(dirs.map((d) => helper.mkdir(d.rel, creationMode(d.entry.mode)).catch(() => 'gone')));
  if (words.includes('moved')) throw helper.moved();
  const out = dirs.find((_, i) => words[i] === 'outside');
  if (out) throw new OutsideRootError(out.rel, remoteRoot);
  const rest = dirs.filter((_, i) => words[i] !== 'ok');
  if (rest.length === 0) return;
  await beforeFallback();
  await sftp(rest);
}

/**
 * SFTP goes by path and follows symlinks: a folder the server replaced by a symlink since it was listed
 * (in watch mode, maybe hours ago) would take writes outside the root. So before anything is written,
 * every folder SFTP writes into (and every path it changes the mode of: chmod follows a link too) is
 * resolved on the server, all requests at once (one round trip, sent only on this path: the fast link)
 * and must be where the physical root says it is. What remains is the moment between that answer and
 * the writes (the remote helper and the bulk mover, which enter each folder themselves, have none).
 * The root must resolve to where it led when it was listed (`physical`, remote-place.ts): a root replaced
 * by a symlink since passes every check made against its own resolution.
 * A path that no longer resolves is left to the write, whose error names it.
 */
async function checkFolders(conn: Connection, call: Call, sftp: SFTPWrapper, remoteRoot: string, physical: Buffer | undefined, rels: Iterable<string>): Promise<void> {
  const all = new Set(rels);
  const todo = [...all].filter((r) => r !== '');
  // The root itself is resolved when something is written straight into it and its listed place is known.
  if (todo.length === 0 && !(all.has('') && physical !== undefined)) return;
  const real = (p: string): Promise<string | undefined> => call<string>((cb) => sftp.realpath(p, cb)).catch(() => undefined);
  // A place that is not UTF-8 cannot be told from SFTP's answers (decoded as UTF-8): a script compares it.
  const byShell = physical !== undefined && !isUtf8(physical) ? conn.exec(`${enterRoot(remoteRoot, physical, 'exit 3')}\nexit 0`) : undefined;
  const [root, ...got] = await Promise.all([real(remoteRoot), ...todo.map((r) => real(path.posix.join(remoteRoot, r)))]);
  if (byShell) {
    const r = await byShell;
    const moved = movedFrom(r.code, r.stderr);
    if (moved) throw new RemoteRootMovedError(remoteRoot, moved.listed, moved.now);
  } else if (physical !== undefined && root !== undefined && !placeIs(physical, root)) throw new RemoteRootMovedError(remoteRoot, physical, root);
  if (root === undefined) return;
  const out = todo.find((r, i) => got[i] !== undefined && got[i] !== path.posix.join(root, r));
  if (out !== undefined) throw new OutsideRootError(out, remoteRoot);
}

/** The folders an SFTP plan writes into that exist before it (not made by it), and the paths it chmods. */
function foldersWrittenInto(plan: Plan, viaHelper: ReadonlySet<PlanItem>, dirsByHelper: boolean): string[] {
  const made = new Set(plan.dirs.map((d) => d.rel));
  const parent = (rel: string): string => path.posix.dirname(rel).replace(/^\.$/, '');
  const out: string[] = [];
  const add = (rel: string): void => {
    for (let p = parent(rel); ; p = parent(p)) {
      if (!made.has(p)) return void out.push(p);
    }
  };
  if (!dirsByHelper) for (const d of plan.dirs) add(d.rel);
  for (const f of plan.files) if (!viaHelper.has(f)) add(f.rel);
  for (const l of plan.links) add(l.rel);
  for (const c of earlyChmods(plan)) {
    add(c.rel);
    out.push(c.rel);
  }
  return out;
}

/** The SFTP path: deletes (sh), folders (by depth), then files and links pipelined. */
export async function applySftp(ctx: ApplyContext, plan: Plan, bytes: number): Promise<ApplyResult> {
  try {
    return await applySftpUnexplained(ctx, plan, bytes);
  } catch (e) {
    throw await explainFailure(ctx, e as Error);
  }
}

/**
 * SFTP reports a full disk as a bare "Failure" (status 4). Ask the server how much room is left, so the
 * user reads "the disk is full" rather than "Failure".
 */
async function explainFailure(ctx: ApplyContext, e: Error): Promise<Error> {
  if (!(e instanceof RemoteError) || e.code !== 4 || !ctx.conn.alive) return e;
  try {
    const r = await ctx.conn.exec(`df -Pk ${shQuote(ctx.remoteRoot)} | tail -n 1`);
    const avail = Number(r.stdout.toString().trim().split('\n').pop()?.split(/\s+/)[3]);
    if (Number.isFinite(avail) && avail < 1024) {
      return new RemoteError(`${e.message.split(' failed on the remote')[0]} failed: the remote disk holding '${ctx.remoteRoot}' is full (${avail} KiB free). Free space there (or enlarge the workspace volume)`, e.code, e.stderr);
    }
  } catch {
    // keep the original error
  }
  return e;
}

async function applySftpUnexplained(ctx: ApplyContext, plan: Plan, bytes: number): Promise<ApplyResult> {
  const sftp = await ctx.conn.sftp();
  const call = caller(ctx.conn);
  await deleteNow(ctx, plan.deletes);
  const remoteOf = (rel: string): string => path.posix.join(ctx.remoteRoot, rel);
  const changed: string[] = [];
  const unsent: string[] = [];
  const warnings: string[] = [];
  // A remote folder removed (or made a file) by the server since the listing: SFTP answers "no such
  // file" (ENOENT, ENOTDIR). What goes into it is not put in place and is compared again by the next
  // full pass, as the bulk path's mover does; the rest of the batch goes on.
  const wrap = async (what: string, rel: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof LocalReadError || e instanceof OutsideRootError || e instanceof RemoteRootMovedError) throw e;
      if (e instanceof InTheWay && ctx.conn.alive) {
        unsent.push(rel);
        warnings.push(`'${rel}' was not put in place: a folder is in its way on the server (made there since it was listed); it is left as the server has it and compared again by the next full pass`);
        return;
      }
      if (e instanceof RemoteError || (e as { code?: unknown }).code !== 2 || !ctx.conn.alive) throw sftpFailure(ctx.conn, ctx.remoteRoot, what, rel, e as Error);
      unsent.push(rel);
      warnings.push(`'${rel}' was not put in place: its remote folder was removed (or made a file) on the server since it was listed; it is left as the server has it and compared again by the next full pass`);
    }
  };
  // Folders: parents first; one depth at a time, pipelined within a depth. Created writable by their
  // owner; a read-only folder gets its own mode after its contents (apply-common.ts).
  const sftpDirs = async (dirs: readonly PlanItem[]): Promise<void> => {
    const byDepth = new Map<number, PlanItem[]>();
    for (const d of dirs) {
      const depth = d.rel.split('/').length;
      const l = byDepth.get(depth) ?? [];
      l.push(d);
      byDepth.set(depth, l);
    }
    for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
      await Promise.all(
        (byDepth.get(depth) ?? []).map((d) =>
          wrap('creating folder', d.rel, async () => {
            const mode = creationMode(d.entry.mode);
            await call<void>((cb) => sftp.mkdir(remoteOf(d.rel), { mode }, (err) => cb(err, undefined))).catch(async (e: Error) => {
              // Made on the server since the listing (a build's output folder): a real folder is used as it is.
              const st = await call<{ isDirectory(): boolean }>((cb) => sftp.lstat(remoteOf(d.rel), cb)).catch(() => undefined);
              if (!st?.isDirectory()) throw e;
            });
            await call<void>((cb) => sftp.chmod(remoteOf(d.rel), mode, (err) => cb(err, undefined)));
          }),
        ),
      );
    }
  };
  const helper = plan.files.some(helperCanSend) || plan.dirs.length > 0 ? await helperToUse(ctx) : undefined;
  // With the helper, folders are requests in its stream like the files after them (one round trip for
  // a file in a new folder); what it could not make SFTP makes, and everything SFTP sends waits for them.
  const dirsByHelper = helper !== undefined && plan.dirs.length > 0 && plan.dirs.length <= HELPER_BATCH_FILES && !plan.dirs.some((d) => d.rel.includes('\n'));
  // The helper writes one file at a time, SFTP 48 at once: a batch is shared between them (share()).
  const viaHelper = new Set(helper ? plan.files.filter(helperCanSend).slice(0, ctx.method === 'helper' ? HELPER_BATCH_FILES : helper.share()) : []);
  const written = foldersWrittenInto(plan, viaHelper, dirsByHelper);
  const physical = ctx.conn.listedRoots.get(ctx.remoteRoot);
  const checking = checkFolders(ctx.conn, call, sftp, ctx.remoteRoot, physical, written);
  // What falls back from the helper to SFTP (the helper died or refused it) is checked once, as if SFTP
  // had written it all from the start: the root and every folder written into.
  let fallbackChecked: Promise<void> | undefined;
  const beforeFallback = (): Promise<void> => (fallbackChecked ??= checkFolders(ctx.conn, call, sftp, ctx.remoteRoot, physical, foldersWrittenInto(plan, new Set(), false)));
  // Files written straight into the root and nothing else by SFTP (a save): the root's check goes with
  // the files' opens, and each waits for it before its rename (its temporary file is removed when the
  // root leads elsewhere); no round trip more. Anything else waits for the checks before it begins.
  const rootFilesOnly = written.length > 0 && written.every((r) => r === '') && (dirsByHelper || plan.dirs.length === 0) && plan.links.length === 0;
  if (rootFilesOnly) checking.catch(() => undefined);
  else await checking;
  const gate = rootFilesOnly ? checking : undefined;
  ctx.onStep?.(`creating ${plan.dirs.length} folders (${dirsByHelper ? 'remote helper' : 'sftp'})`);
  const dirsReady = dirsByHelper ? helperDirs(helper, plan.dirs, ctx.remoteRoot, sftpDirs, beforeFallback) : sftpDirs(plan.dirs);
  if (!dirsByHelper) await dirsReady;
  const afterDirs = <T>(fn: () => Promise<T>): Promise<T> => dirsReady.then(fn);
  ctx.onStep?.(`writing ${plan.files.length} files (${viaHelper.size > 0 ? `${viaHelper.size} by the remote helper` : 'sftp'})`);
  const limit = new Limiter(SFTP_PARALLEL);
  await Promise.all([
    dirsReady,
    ...plan.files.map(async (f) => {
      try {
        await wrap('writing', f.rel, () => upload(call, sftp, viaHelper.has(f) ? helper : undefined, limit, dirsReady, path.join(ctx.localRoot, f.rel), remoteOf(f.rel), f, ctx.onBytes, gate, beforeFallback));
      } catch (e) {
        if (!(e instanceof LocalReadError)) throw e;
        unsent.push(f.rel);
        if (e.kind === 'changed') changed.push(f.rel);
        else warnings.push(e.message);
      }
    }),
    ...plan.links.map((l) =>
      afterDirs(() =>
        limit.run(() =>
          wrap('creating symlink', l.rel, async () => {
            const tmp = tempName(remoteOf(l.rel));
            await call<void>((cb) => sftp.symlink(l.entry.target as string, tmp, (err) => cb(err, undefined)));
            await renameInPlace(call, sftp, tmp, remoteOf(l.rel), l.rel);
          }),
        ),
      ),
    ),
    ...earlyChmods(plan).map((c) =>
      afterDirs(() => limit.run(() => wrap('changing mode of', c.rel, () => call<void>((cb) => sftp.chmod(remoteOf(c.rel), c.entry.mode, (err) => cb(err, undefined)))))),
    ),
  ]);
  return { changed, unsent, warnings, bytes, method: 'sftp' };
}

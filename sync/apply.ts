/**
 * Applies a plan to the remote. Two ways, chosen by batch size:
 * - bulk: one tar stream over one exec channel into a staging folder beside the files, then one `sh`
 *   script (read from the same stream) that deletes, moves the new items into place with `mv` (a
 *   rename: nobody sees a half-written file) and fixes permissions. Writes to the channel are
 *   coalesced to ~256 KiB: ssh2 sends one SSH packet per write and sshd copies per packet.
 * - SFTP: pipelined requests, each file written to a temporary name and renamed over the target
 *   (posix-rename), for single edits and medium batches.
 * Deletes always go as an `sh` script on stdin (`rm -rf -- ...` in chunks): no argv overflow.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { SFTPWrapper } from 'ssh2';
import { Plan, PlanItem } from './plan';
import { Connection, ConnectionError, ExecResult, RemoteError } from './transport';
import { Entry, shQuote } from './tree';

/** Writes are merged into chunks of this size before the SSH channel. */
export const COALESCE_BYTES = 256 * 1024;
/** Batches with more files than this (or more bytes than BULK_BYTES) go as one tar stream. */
export const BULK_FILES = 400;
export const BULK_BYTES = 64 * 1024 * 1024;
/** SFTP requests (files) in flight. */
export const SFTP_PARALLEL = 48;
/** Files larger than this are streamed in 256 KiB reads rather than read whole. */
const LARGE_FILE = 4 * 1024 * 1024;
/** Longest shell command line a script builds (well below every ARG_MAX). */
const MAX_COMMAND = 96 * 1024;

/** Merges small writes into ~`size` byte chunks. */
export class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly size = COALESCE_BYTES, private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes?.(chunk.length);
    this.parts.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= this.size) this.flushParts();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.flushParts();
    cb();
  }
  private flushParts(): void {
    if (this.bytes === 0) return;
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes));
    this.parts = [];
    this.bytes = 0;
  }
}

export interface ApplyResult {
  /** Files whose local copy changed while it was being sent: send them again. */
  readonly changed: string[];
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
  /** Force a method (benchmarks, tests). */
  readonly method?: 'tar' | 'sftp';
  /** Told of bytes as they are sent (progress display). */
  readonly onBytes?: (n: number) => void;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function rp(rel: string): string {
  return rel === '' ? '.' : `./${rel}`;
}

/** Lines of `cmd -- arg arg ...`, each under MAX_COMMAND. */
function chunked(prefix: string, args: string[], suffix = ''): string[] {
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

function deleteLines(deletes: readonly string[]): string[] {
  return chunked('rm -rf --', deletes.map((d) => shQuote(rp(d))));
}

function chmodLines(items: readonly PlanItem[]): string[] {
  const byMode = new Map<number, string[]>();
  for (const c of items) {
    const l = byMode.get(c.entry.mode) ?? [];
    l.push(shQuote(rp(c.rel)));
    byMode.set(c.entry.mode, l);
  }
  const lines: string[] = [];
  for (const [mode, paths] of byMode) lines.push(...chunked(`chmod ${mode.toString(8)} --`, paths));
  return lines;
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

/** Deletes remote paths (top-most only) with `rm -rf`, as a script on stdin. */
export async function remoteDelete(ctx: ApplyContext, deletes: readonly string[]): Promise<void> {
  if (deletes.length === 0) return;
  const script = ['set -e', `cd ${shQuote(ctx.remoteRoot)}`, ...deleteLines(deletes), ''].join('\n');
  const r = await ctx.conn.exec('sh -s', script, { signal: ctx.signal });
  if (r.code !== 0) throw remoteFailure('deleting', ctx.remoteRoot, r.code, r.stderr);
}

/** Reads exactly `size` bytes of a file (zero-padded if it shrank); flags whether it changed. */
async function* exactly(abs: string, size: number, flag: { changed: boolean }): AsyncGenerator<Buffer> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(abs, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
    flag.changed = true;
    if (size > 0) yield Buffer.alloc(size);
    return;
  }
  try {
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(left, 256 * 1024));
      const { bytesRead } = await fh.read(buf, 0, buf.length, size - left);
      if (bytesRead === 0) {
        flag.changed = true;
        yield Buffer.alloc(left);
        return;
      }
      left -= bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

async function changedSince(abs: string, e: { size: number; mtimeMs: number }): Promise<boolean> {
  try {
    const st = fs.lstatSync(abs);
    return !st.isFile() || st.size !== e.size || st.mtimeMs !== e.mtimeMs;
  } catch {
    return true;
  }
}


/** Whether a local `tar` can pack for us (GNU tar or bsdtar); `KUBEDEV_TAR=js` forces tar-stream. */
let localTarChecked: boolean | undefined;
function localTarAvailable(): boolean {
  if (process.env.KUBEDEV_TAR === 'js') return false;
  if (localTarChecked === undefined) {
    try {
      const v = execFileSync('tar', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
      localTarChecked = /GNU tar|bsdtar/.test(v);
    } catch {
      localTarChecked = false;
    }
  }
  return localTarChecked;
}

/**
 * Packs `names` (relative to `root`, no recursion) with the local tar: the fastest feed measured
 * (tar-stream in-process costs about twice the CPU). Files that vanish meanwhile are reported, not fatal.
 */
function localTar(root: string, names: readonly string[]): { stream: Readable; done: Promise<void> } {
  const child = spawn('tar', ['-c', '-f', '-', '-C', root, '--no-recursion', '--null', '-T', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 16_384) stderr += d;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run the local 'tar': ${e.message}. Install tar, or set KUBEDEV_TAR=js`)));
    child.once('close', (code) => {
      const serious = stderr.split('\n').filter((l) => l.trim() !== '' && !/No such file|Cannot stat|file changed as we read it|File removed before we read it|Exiting with failure status/.test(l));
      if (code === 0 || code === 1 || (code === 2 && serious.length === 0)) resolve();
      else reject(new Error(`local tar failed (exit ${code}): ${serious.slice(0, 3).join('; ') || stderr.trim()}`));
    });
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(Buffer.from(names.map((n) => `${n}\0`).join('')));
  return { stream: child.stdout, done };
}

/** Applies `plan` choosing tar for bulk, SFTP otherwise. */
export async function applyPlan(ctx: ApplyContext, plan: Plan): Promise<ApplyResult> {
  const bytes = plan.files.reduce((n, f) => n + f.entry.size, 0);
  const count = plan.files.length + plan.links.length + plan.dirs.length;
  if (count === 0 && plan.chmods.length === 0) {
    await remoteDelete(ctx, plan.deletes);
    return { changed: [], bytes: 0, method: plan.deletes.length > 0 ? 'sftp' : 'none' };
  }
  const bulk = ctx.method ? ctx.method === 'tar' : count > BULK_FILES || (bytes > BULK_BYTES && plan.files.length > 1);
  return bulk ? applyTar(ctx, plan, bytes) : applySftp(ctx, plan, bytes);
}

/** The bulk path: tar into a staging folder, then one script that deletes, moves and chmods. */
export async function applyTar(ctx: ApplyContext, plan: Plan, bytes: number): Promise<ApplyResult> {
  const stage = `.kubedev-stage-${crypto.randomBytes(6).toString('hex')}`;
  const deleted = new Set(plan.deletes);
  const isGone = (rel: string): boolean => {
    for (let p = rel; p !== ''; p = parentOf(p)) if (deleted.has(p)) return true;
    return false;
  };
  const parentExists = (rel: string): boolean => {
    const p = parentOf(rel);
    if (p === '') return true;
    const e = ctx.remote.get(p);
    return e !== undefined && e.type === 'dir' && !isGone(p);
  };
  // Items to move into place: the top-most new ones (their parent already exists remotely).
  const moves: string[] = [];
  for (const d of plan.dirs) if (parentExists(d.rel)) moves.push(d.rel);
  for (const f of plan.files) if (parentExists(f.rel)) moves.push(f.rel);
  for (const l of plan.links) if (parentExists(l.rel)) moves.push(l.rel);

  // Deletes (type changes included) and mode changes run right after extraction, before the moves.
  const script = ['set -e', ...deleteLines(plan.deletes), ...chmodLines(plan.chmods), ''];
  const scriptName = '.kubedev-apply.sh';

  const command = [
    `cd ${shQuote(ctx.remoteRoot)} || exit 3`,
    `S=${stage}`,
    'mkdir "$S" || exit 3',
    `tar -x -p -o -f - -C "$S" && sh "$S/${scriptName}"`,
    'rc=$?',
    'if [ $rc -ne 0 ]; then rm -rf "$S"; fi',
    'exit $rc',
  ].join('\n');

  const changed: string[] = [];
  let r: ExecResult;
  if (localTarAvailable()) {
    // Deletes and mode changes first (their own script), then one extraction fed by the local tar.
    if (plan.deletes.length + plan.chmods.length > 0) {
      const pre = await ctx.conn.exec('sh -s', [`cd ${shQuote(ctx.remoteRoot)}`, ...script].join('\n'), { signal: ctx.signal });
      if (pre.code !== 0) throw remoteFailure('deleting and changing modes', ctx.remoteRoot, pre.code, pre.stderr);
    }
    const names = [...plan.dirs.map((d) => d.rel), ...plan.links.map((l) => l.rel), ...plan.files.map((f) => f.rel)];
    const packed = localTar(ctx.localRoot, names);
    const extract = [`cd ${shQuote(ctx.remoteRoot)} || exit 3`, `S=${stage}`, 'mkdir "$S" || exit 3', 'tar -x -p -o -f - -C "$S"', 'rc=$?', 'if [ $rc -ne 0 ]; then rm -rf "$S"; fi', 'exit $rc'].join('\n');
    try {
      [r] = await Promise.all([ctx.conn.exec(extract, packed.stream.pipe(new Coalesce(COALESCE_BYTES, ctx.onBytes)), { signal: ctx.signal }), packed.done]);
    } catch (e) {
      packed.stream.destroy();
      throw e;
    }
  } else {
    r = await packInProcess();
  }
  return finishTar(r);

  async function packInProcess(): Promise<ExecResult> {
  const pack = tar.pack();
  const now = new Date();
  const feed = async (): Promise<void> => {
    try {
      const scriptBuf = Buffer.from(script.join('\n'));
      pack.entry({ name: scriptName, size: scriptBuf.length, mode: 0o600, mtime: now, uid: 0, gid: 0 }, scriptBuf);
      for (const d of plan.dirs) pack.entry({ name: d.rel, type: 'directory', mode: d.entry.mode, mtime: new Date(d.entry.mtimeMs), uid: 0, gid: 0 });
      for (const l of plan.links) pack.entry({ name: l.rel, type: 'symlink', linkname: l.entry.target, mode: 0o777, mtime: new Date(l.entry.mtimeMs), uid: 0, gid: 0 });
      const window: Promise<void>[] = [];
      for (const f of plan.files) {
        const header = { name: f.rel, type: 'file' as const, size: f.entry.size, mode: f.entry.mode, mtime: new Date(f.entry.mtimeMs), uid: 0, gid: 0 };
        const abs = path.join(ctx.localRoot, f.rel);
        if (f.entry.size <= 64 * 1024) {
          const flag = { changed: false };
          let buf: Buffer;
          try {
            // Synchronous on purpose: for small files the thread-pool hop costs more than the read.
            buf = fs.readFileSync(abs);
          } catch {
            buf = Buffer.alloc(0);
          }
          if (buf.length !== f.entry.size) {
            flag.changed = true;
            buf = buf.length > f.entry.size ? buf.subarray(0, f.entry.size) : Buffer.concat([buf, Buffer.alloc(f.entry.size - buf.length)]);
          }
          if (flag.changed) changed.push(f.rel);
          // Back-pressure: an entry's callback fires once the pack stream took it; keep a bounded window.
          window.push(new Promise<void>((resolve, reject) => pack.entry(header, buf, (err) => (err ? reject(err) : resolve()))));
          if (window.length >= 64) await window.shift();
        } else {
          const flag = { changed: false };
          await Promise.all(window.splice(0));
          await pipeline(Readable.from(exactly(abs, f.entry.size, flag), { objectMode: false }), pack.entry(header), { signal: ctx.signal });
          if (flag.changed) changed.push(f.rel);
        }
      }
      await Promise.all(window);
      pack.finalize();
    } catch (e) {
      pack.destroy(e as Error);
      throw e;
    }
  };
  const feeding = feed();
  const coalesced = pack.pipe(new Coalesce(COALESCE_BYTES, ctx.onBytes));
  pack.on('error', (e) => coalesced.destroy(e));
  try {
    const [res] = await Promise.all([ctx.conn.exec(command, coalesced, { signal: ctx.signal }), feeding]);
    return res;
  } catch (e) {
    pack.destroy();
    throw e;
  }
  }

  async function finishTar(r: ExecResult): Promise<ApplyResult> {
  if (r.code !== 0) throw remoteFailure('writing files (tar)', ctx.remoteRoot, r.code, r.stderr);
  // Every move is one rename(2) on the server (same file system): pipelined SFTP posix-renames.
  const sftp = await ctx.conn.sftp();
  const call = caller(ctx.conn.lost);
  const limit = new Limiter(SFTP_PARALLEL * 2);
  const stageAbs = path.posix.join(ctx.remoteRoot, stage);
  await Promise.all(
    moves.map((rel) =>
      limit.run(async () => {
        try {
          await call<void>((cb) => sftp.ext_openssh_rename(`${stageAbs}/${rel}`, path.posix.join(ctx.remoteRoot, rel), (err) => cb(err, undefined)));
        } catch (e) {
          // Not in the archive: it vanished locally while being packed. Look at it again.
          if ((e as { code?: number }).code === 2 && ctx.conn.alive) changed.push(rel);
          else throw sftpFailure(ctx.conn, ctx.remoteRoot, 'moving into place', rel, e as Error);
        }
      }),
    ),
  );
  const cleaning = ctx.conn.exec(`rm -rf ${shQuote(stageAbs)}`);
  // While the staging folder is removed: which files changed locally while they were sent?
  const already = new Set(changed);
  for (const f of plan.files) {
    if (!already.has(f.rel) && (await changedSince(path.join(ctx.localRoot, f.rel), f.entry))) changed.push(f.rel);
  }
  const cleanup = await cleaning;
  if (cleanup.code !== 0) throw remoteFailure('removing the staging folder', ctx.remoteRoot, cleanup.code, cleanup.stderr);
  return { changed, bytes, method: 'tar' };
  }
}

// ---- SFTP ----

type Call = <T>(fn: (cb: (err: Error | null | undefined, v: T) => void) => void) => Promise<T>;

/** SFTP requests race the connection's loss: ssh2 leaves pending requests unanswered when it drops. */
function caller(lost: Promise<never>): Call {
  return <T>(fn: (cb: (err: Error | null | undefined, v: T) => void) => void): Promise<T> =>
    Promise.race([new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v)))), lost]);
}

function sftpFailure(conn: Connection, remoteRoot: string, what: string, rel: string, e: Error & { code?: number | string }): Error {
  if (!conn.alive) return new ConnectionError(`connection dropped while ${what} '${rel}'`);
  if (e instanceof ConnectionError) return e;
  const code = e.code;
  let hint = `Check the remote folder '${remoteRoot}' (free space, owner, mode)`;
  if (code === 3) hint = `The remote user may not write there: fix the owner or mode of '${remoteRoot}' or pass a --remote the user owns`;
  else if (code === 2) hint = `A remote folder vanished or a path in the way is a file: run again, or check '${remoteRoot}'`;
  else if (code === 4) hint = `The server gives no detail ("Failure"): most often the remote disk is full or a path in the way is a file; check free space in '${remoteRoot}'`;
  return new RemoteError(`${what} '${rel}' failed on the remote (${e.message}). ${hint}.`, typeof code === 'number' ? code : null, e.message);
}

class Limiter {
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

/** SFTP write requests of this size, this many in flight per large file. */
const SFTP_CHUNK = 32 * 1024;
const SFTP_WINDOW = 64;

async function sftpUpload(sftpCall: Call, sftp: SFTPWrapper, abs: string, remote: string, item: PlanItem, onBytes?: (n: number) => void): Promise<boolean> {
  const tmp = tempName(remote);
  const flag = { changed: false };
  const mtime = Math.floor(item.entry.mtimeMs / 1000);
  const handle = await sftpCall<Buffer>((cb) => sftp.open(tmp, 'w', { mode: item.entry.mode }, cb));
  try {
    // Exactly `size` bytes, streamed (never the whole file in memory), up to SFTP_WINDOW writes in flight.
    const inflight = new Set<Promise<void>>();
    let failure: Error | undefined;
    let pos = 0;
    const source: AsyncIterable<Buffer> = item.entry.size <= LARGE_FILE ? smallFile(abs, item.entry.size, flag) : exactly(abs, item.entry.size, flag);
    for await (const buf of source) {
      for (let off = 0; off < buf.length; off += SFTP_CHUNK) {
        const len = Math.min(SFTP_CHUNK, buf.length - off);
        const at = pos + off;
        const p: Promise<void> = sftpCall<void>((cb) => sftp.write(handle, buf, off, len, at, (err) => cb(err, undefined))).then(
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
    await Promise.all(inflight);
    if (failure) throw failure;
    await sftpCall<void>((cb) => sftp.fsetstat(handle, { mode: item.entry.mode, atime: mtime, mtime }, (err) => cb(err, undefined)));
  } catch (e) {
    await sftpCall<void>((cb) => sftp.close(handle, (err) => cb(err, undefined))).catch(() => undefined);
    await sftpCall<void>((cb) => sftp.unlink(tmp, (err) => cb(err, undefined))).catch(() => undefined);
    throw e;
  }
  await sftpCall<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)));
  await sftpCall<void>((cb) => sftp.ext_openssh_rename(tmp, remote, (err) => cb(err, undefined))).catch(async (e) => {
    await sftpCall<void>((cb) => sftp.unlink(tmp, (err) => cb(err, undefined))).catch(() => undefined);
    throw e;
  });
  return flag.changed || (await changedSince(abs, item.entry));
}

/** A small file in one read (exactly `size` bytes, zero-padded or cut if it changed). */
async function* smallFile(abs: string, size: number, flag: { changed: boolean }): AsyncGenerator<Buffer> {
  let data: Buffer;
  try {
    data = await fs.promises.readFile(abs);
  } catch {
    data = Buffer.alloc(0);
  }
  if (data.length !== size) {
    flag.changed = true;
    data = data.length > size ? data.subarray(0, size) : Buffer.concat([data, Buffer.alloc(size - data.length)]);
  }
  if (size > 0) yield data;
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
    const avail = Number(r.stdout.toString().trim().split(/\s+/)[3]);
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
  const sftpCall = caller(ctx.conn.lost);
  await remoteDelete(ctx, plan.deletes);
  const remoteOf = (rel: string): string => path.posix.join(ctx.remoteRoot, rel);
  const wrap = async (what: string, rel: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      throw sftpFailure(ctx.conn, ctx.remoteRoot, what, rel, e as Error);
    }
  };
  // Folders: parents first; one depth at a time, pipelined within a depth.
  const byDepth = new Map<number, PlanItem[]>();
  for (const d of plan.dirs) {
    const depth = d.rel.split('/').length;
    const l = byDepth.get(depth) ?? [];
    l.push(d);
    byDepth.set(depth, l);
  }
  for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
    await Promise.all(
      (byDepth.get(depth) ?? []).map((d) =>
        wrap('creating folder', d.rel, async () => {
          await sftpCall<void>((cb) => sftp.mkdir(remoteOf(d.rel), { mode: d.entry.mode }, (err) => cb(err, undefined)));
          await sftpCall<void>((cb) => sftp.chmod(remoteOf(d.rel), d.entry.mode, (err) => cb(err, undefined)));
        }),
      ),
    );
  }
  const limit = new Limiter(SFTP_PARALLEL);
  const changed: string[] = [];
  await Promise.all([
    ...plan.files.map((f) =>
      limit.run(() =>
        wrap('writing', f.rel, async () => {
          if (await sftpUpload(sftpCall, sftp, path.join(ctx.localRoot, f.rel), remoteOf(f.rel), f, ctx.onBytes)) changed.push(f.rel);
        }),
      ),
    ),
    ...plan.links.map((l) =>
      limit.run(() =>
        wrap('creating symlink', l.rel, async () => {
          const tmp = tempName(remoteOf(l.rel));
          await sftpCall<void>((cb) => sftp.symlink(l.entry.target as string, tmp, (err) => cb(err, undefined)));
          await sftpCall<void>((cb) => sftp.ext_openssh_rename(tmp, remoteOf(l.rel), (err) => cb(err, undefined)));
        }),
      ),
    ),
    ...plan.chmods.map((c) =>
      limit.run(() => wrap('changing mode of', c.rel, () => sftpCall<void>((cb) => sftp.chmod(remoteOf(c.rel), c.entry.mode, (err) => cb(err, undefined))))),
    ),
  ]);
  return { changed, bytes, method: 'sftp' };
}

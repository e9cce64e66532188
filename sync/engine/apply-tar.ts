/**
 * The bulk way: deletes and mode changes as one script, then one tar stream over one exec channel into
 * a staging folder inside the remote root, then each top-most new item renamed into place (one shell
 * script, `mv` per target folder: apply-moves.ts; SFTP renames if something is mounted below the
 * root). Before the moves, every file is checked
 * against the local file system: one that changed, vanished or could not be read while it was packed
 * has its staged copy removed, so no padded or cut file ever takes a real name.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as TarStream from 'tar-stream';
import { caller, Limiter, sftpFailure } from './apply-sftp';
import { ApplyContext, ApplyResult, COALESCE_BYTES, earlyChmods, OWNER_RWX, parentOf, remoteFailure } from './apply-common';
import { checkScript, moverCommand, moverInput, MoveReport, moveReport, NO_PERL, REMOVE_STAGE } from './apply-moves';
import { Coalesce } from './coalesce';
import { localGzipAvailable, localTar, localTarKind } from './local-tar';
import { LocalReadError, readExactly, readSmallSync } from './local-read';
import { PackedLook } from './packed-look';
import { Plan, PlanItem } from './plan';
import { enterRoot } from './remote-place';
import { chmodOps, remoteFix, removeOps } from './remote-fix';
import { ExecResult } from './transport';
import { shQuote } from './tree';

/**
 * Renames in flight at once: each is a ~100-byte request the server answers at once, so the window is
 * what bounds them on a distant link (9,600 moves at 50 ms round trip: 5 s with 96 in flight, 0.5 s with 1,024).
 */
const MOVES_IN_FLIGHT = 1024;

/**
 * The archive is gzipped (`gzip -1`: about 3 times smaller for source code, and tar's padding gone) when
 * every exec channel took at least this long to open (two round trips and a process start: a round trip
 * of about 25 ms and more; a loaded 2-core machine took up to 35 ms at 0 ms) and it is worth it: at 50 ms
 * the channel's 2 MB window bounds the stream to ~40 MB/s, while at 0 ms the compression's CPU costs
 * more than the bytes it saves.
 */
const COMPRESS_OPEN_MS = 60;
const COMPRESS_MIN_BYTES = 1024 * 1024;
/** The extraction's exit code when the server has no gzip (nothing was written). */
const NO_GZIP = 92;
/** Connections whose server lacked gzip. */
const noGzip = new WeakSet<object>();

/** The bulk path: tar into a staging folder, checks, then the moves. */
export async function applyTar(ctx: ApplyContext, plan: Plan, bytes: number): Promise<ApplyResult> {
  const stage = `.kubedev-stage-${crypto.randomBytes(6).toString('hex')}`;
  const changed: string[] = [];
  const unsent = new Set<string>();
  const warnings: string[] = [];
  const skip = (rel: string, e: LocalReadError): void => {
    unsent.add(rel);
    if (e.kind === 'changed') changed.push(rel);
    else warnings.push(e.message);
  };
  // Files this process may not read: the local tar leaves them out and names them (skipped below);
  // tar-stream's read fails. Either way their remote copy stays.
  const files = plan.files;
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
  for (const f of files) if (parentExists(f.rel)) moves.push(f.rel);
  for (const l of plan.links) if (parentExists(l.rel)) moves.push(l.rel);

  // Deletes (type changes included) and mode changes run before the extraction's moves.
  const fixes = [...removeOps(plan.deletes), ...chmodOps(earlyChmods(plan))];
  // A folder without u+rwx gets its mode after its contents (the archive lists folders first).
  const delayModes = plan.dirs.some((d) => (d.entry.mode & OWNER_RWX) !== OWNER_RWX) ? ' --delay-directory-restore' : '';
  const ahead = openAhead(ctx, stage);
  /** The local tar's path: the files found changed once it had read them all (packed-look.ts). */
  let changedWhilePacked: string[] | undefined;
  try {
    return await sendAndMove();
  } finally {
    ahead.cancel();
  }

  async function sendAndMove(): Promise<ApplyResult> {
    let r: ExecResult;
    // Deletes and mode changes touch real names only, the archive lands in the staging folder: they run
    // while it is sent (one round trip and process start less), and are done before anything moves.
    const pre = remoteFix(ctx.conn, ctx.remoteRoot, fixes, { what: 'deleting and changing modes', signal: ctx.signal, busy: ctx.onBusy });
    pre.catch(() => undefined); // awaited below
    const kind = await localTarKind();
    if (kind) {
      const distant = ctx.compress ?? (ctx.conn.execOpenMs >= COMPRESS_OPEN_MS && bytes >= COMPRESS_MIN_BYTES);
      const gzip = distant && !noGzip.has(ctx.conn) && (await localGzipAvailable());
      const sent = await sendArchive(gzip, kind);
      if (sent.code === NO_GZIP && gzip) {
        noGzip.add(ctx.conn); // the server has no gzip: sent again as it is (once per connection)
        r = (await sendArchive(false, kind)).r;
      } else r = sent.r;
    } else {
      r = await packInProcess();
    }
    try {
      await pre;
    } catch (e) {
      await ahead.run(Buffer.alloc(0)).catch(() => undefined); // nothing to move: the mover removes the staging folder
      throw e;
    }
    if (r.code !== 0) throw remoteFailure('writing files (tar)', ctx.remoteRoot, r.code, r.stderr);
    return finish();
  }

  /** The archive by the local tar (gzipped or not) into the staging folder; unreadable members marked. */
  async function sendArchive(gzip: boolean, kind: 'gnu' | 'bsd'): Promise<{ r: ExecResult; code: number | null }> {
    // GNU tar's archive is followed as it is written: each file is looked at once tar has read it (packed-look.ts).
    const look = new PackedLook(ctx.localRoot, files, kind === 'gnu');
    const names = [...plan.dirs.map((d) => d.rel), ...plan.links.map((l) => l.rel), ...files.map((f) => f.rel)];
    const packed = localTar(ctx.localRoot, names, { gzip, kind, onArchived: kind === 'gnu' ? (b) => look.archived(b) : undefined });
    const unpack = gzip ? `gzip -dc | tar -x -p -o${delayModes} -f - -C "$S"` : `tar -x -p -o${delayModes} -f - -C "$S"`;
    const probe = gzip ? [`command -v gzip >/dev/null 2>&1 || exit ${NO_GZIP}`] : [];
    const extract = [enterRoot(ctx.remoteRoot, ctx.conn.listedRoots.get(ctx.remoteRoot), 'exit 3'), ...probe, `S=${stage}`, 'mkdir "$S" || exit 3', unpack, 'rc=$?', `if [ $rc -ne 0 ]; then ${REMOVE_STAGE}; fi`, 'exit $rc'].join('\n');
    ctx.onStep?.(`sending ${files.length} files (tar${gzip ? ', gzip' : ''})`);
    try {
      const running = ctx.conn.exec(extract, packed.stream.pipe(new Coalesce(COALESCE_BYTES, ctx.onBytes)), { signal: ctx.signal });
      // Those not looked at yet are looked at once the local tar has read every file (its output all
      // taken), while the server still extracts.
      const looking = packed.done.then(() => look.rest());
      looking.catch(() => undefined); // a tar that failed: awaited below
      const res = await running;
      if (res.code !== 0) {
        // The server's side ended first (no gzip there, a full disk): the rest of the archive is not wanted.
        packed.kill();
        packed.done.catch(() => undefined); // cut short on purpose
        return { r: res, code: res.code };
      }
      const { skipped } = await packed.done;
      for (const [rel, reason] of skipped) {
        const code = /Permission denied/.test(reason) ? 'EACCES' : reason;
        skip(rel, new LocalReadError(rel, 'unreadable', `'${rel}' cannot be read (${code}); it is not sent and its remote copy is left as it is. Fix its permissions, or add it to .kubedevignore`));
      }
      changedWhilePacked = await looking;
      return { r: res, code: res.code };
    } catch (e) {
      packed.kill();
      packed.done.catch(() => undefined);
      throw e;
    }
  }

  /** tar-stream in-process: a file that cannot be read whole is marked. */
  async function packInProcess(): Promise<ExecResult> {
    const command = [enterRoot(ctx.remoteRoot, ctx.conn.listedRoots.get(ctx.remoteRoot), 'exit 3'), `S=${stage}`, 'mkdir "$S" || exit 3', `tar -x -p -o${delayModes} -f - -C "$S"`, 'rc=$?', `if [ $rc -ne 0 ]; then ${REMOVE_STAGE}; fi`, 'exit $rc'].join('\n');
    // tar-stream loads only on this fallback (no local tar): start-up is part of every run.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pack = (require('tar-stream') as typeof TarStream).pack();
    const feed = async (): Promise<void> => {
      try {
        for (const d of plan.dirs) pack.entry({ name: d.rel, type: 'directory', mode: d.entry.mode, mtime: new Date(d.entry.mtimeMs), uid: 0, gid: 0 });
        for (const l of plan.links) pack.entry({ name: l.rel, type: 'symlink', linkname: l.entry.target, mode: 0o777, mtime: new Date(l.entry.mtimeMs), uid: 0, gid: 0 });
        const window: Promise<void>[] = [];
        for (const f of files) {
          const header = { name: f.rel, type: 'file' as const, size: f.entry.size, mode: f.entry.mode, mtime: new Date(f.entry.mtimeMs), uid: 0, gid: 0 };
          const abs = path.join(ctx.localRoot, f.rel);
          if (f.entry.size <= 64 * 1024) {
            let buf: Buffer;
            try {
              buf = readSmallSync(abs, f.rel, f.entry.size); // synchronous: for small files the thread-pool hop costs more
            } catch (e) {
              if (!(e instanceof LocalReadError)) throw e;
              skip(f.rel, e);
              buf = Buffer.alloc(f.entry.size); // the archive needs the bytes; the staged copy is removed before the moves
            }
            window.push(new Promise<void>((resolve, reject) => pack.entry(header, buf, (err) => (err ? reject(err) : resolve()))));
            if (window.length >= 64) await window.shift();
          } else {
            await Promise.all(window.splice(0));
            await pipeline(Readable.from(padOnFailure(readExactly(abs, f.rel, f.entry.size), f, skip), { objectMode: false }), pack.entry(header), { signal: ctx.signal });
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
    ctx.onStep?.(`sending ${files.length} files (tar)`);
    try {
      const [res] = await Promise.all([ctx.conn.exec(command, coalesced, { signal: ctx.signal }), feeding]);
      return res;
    } catch (e) {
      pack.destroy();
      throw e;
    }
  }

  async function finish(): Promise<ApplyResult> {
    // Which files changed locally while they were packed? Their staged copies must not take a real name.
    // (The local tar's path looked while packing; the in-process one's looks now.)
    for (const rel of changedWhilePacked ?? (await new PackedLook(ctx.localRoot, files).rest())) {
      if (!unsent.has(rel)) skip(rel, new LocalReadError(rel, 'changed', ''));
    }
    const bad = files.filter((f) => unsent.has(f.rel)).map((f) => f.rel);
    // A moved folder must be writable itself (rename updates its '..'); its final mode comes last.
    const moving = new Set(moves);
    const locked = plan.dirs.filter((d) => (d.entry.mode & OWNER_RWX) !== OWNER_RWX && moving.has(d.rel)).map((d) => d.rel);
    const todo = moves.filter((rel) => !unsent.has(rel));
    ctx.onStep?.(`moving ${todo.length} items into place`);
    const r = await ahead.run(moverInput({ bad, locked, moves: todo }));
    let rep: MoveReport;
    if (r.code === NO_PERL) {
      ctx.onStep?.('checking target folders');
      const check = await ctx.conn.exec('sh -s', [enterRoot(ctx.remoteRoot, ctx.conn.listedRoots.get(ctx.remoteRoot), 'exit 3'), ...checkScript({ remoteRoot: ctx.remoteRoot, stage, bad, locked, moves: todo }), ''].join('\n'), { signal: ctx.signal });
      if (check.code !== 0) throw remoteFailure('checking target folders', ctx.remoteRoot, check.code, check.stderr);
      rep = moveReport(check.stdout);
      await moveBySftp(ctx, stage, todo.filter((rel) => !rep.denied.has(parentOf(rel))), lost, (rel) => rep.blocked.push([rel, 'something else is in the way']));
    } else {
      rep = moveReport(r.stdout);
      if (r.code !== 0 || rep.failed.length > 0) throw remoteFailure('moving files into place', ctx.remoteRoot, r.code ?? 1, [r.stderr, ...rep.failed.map(([rel, msg]) => `'${rel}': ${msg}`)].join('\n'));
      for (const rel of rep.missing) lost(rel); // not in the archive: it vanished locally while being packed
    }
    for (const [rel, msg] of rep.blocked) {
      unsent.add(rel);
      warnings.push(`'${rel}' was not put in place: ${msg} on the server (something was made there during the transfer); it is left as the server has it and compared again by the next full pass`);
    }
    for (const dir of rep.denied) warnings.push(`remote folder '${dir || '.'}' is no longer a folder inside '${ctx.remoteRoot}' (replaced by a symlink or a file, or removed, on the server during the transfer); what was sent into it was not put in place and is compared again by the next full pass`);
    if (rep.denied.size > 0) for (const rel of todo) if (rep.denied.has(parentOf(rel))) unsent.add(rel);
    return { changed, unsent: [...unsent], warnings, bytes, method: 'tar' };
  }

  /** A staged item that could not be moved as it is not there: look at it again. */
  function lost(rel: string): void {
    changed.push(rel);
    unsent.add(rel);
  }
}

/** The moves by pipelined SFTP renames (a server without perl), then the staging folder removed. */
async function moveBySftp(ctx: ApplyContext, stage: string, todo: readonly string[], lost: (rel: string) => void, blocked: (rel: string) => void): Promise<void> {
  const stageAbs = path.posix.join(ctx.remoteRoot, stage);
  const sftp = await ctx.conn.sftp();
  const call = caller(ctx.conn);
  const limit = new Limiter(MOVES_IN_FLIGHT);
  const failures: Error[] = [];
  await Promise.all(
    todo.map((rel) =>
      limit.run(async () => {
        try {
          await call<void>((cb) => sftp.ext_openssh_rename(`${stageAbs}/${rel}`, path.posix.join(ctx.remoteRoot, rel), (err) => cb(err, undefined)));
        } catch (e) {
          const code = (e as { code?: number }).code;
          // Not in the archive: it vanished locally while being packed. Look at it again.
          if (code === 2 && ctx.conn.alive) lost(rel);
          // "Failure": something is in the way on the server (a folder made there during the transfer:
          // ENOTEMPTY, EISDIR, EEXIST), as the mover's blocked items.
          else if (code === 4 && ctx.conn.alive) blocked(rel);
          else failures.push(sftpFailure(ctx.conn, ctx.remoteRoot, 'moving into place', rel, e as Error));
        }
      }),
    ),
  );
  // The staging folder goes whatever happened to the moves (a connection lost leaves it to the next pass).
  if (ctx.conn.alive) {
    ctx.onStep?.('removing the staging folder');
    const cleanup = await ctx.conn.exec('sh -s', `S=${shQuote(stageAbs)}; ${REMOVE_STAGE}\n`, { signal: ctx.signal });
    if (failures.length === 0 && cleanup.code !== 0) throw remoteFailure('removing the staging folder', ctx.remoteRoot, cleanup.code, cleanup.stderr);
  }
  if (failures.length > 0) throw failures[0];
}

/**
 * What the end of applyTar needs, started with it so that it costs no round trip and process start
 * after the archive: the mover (apply-moves.ts), waiting on its input. `cancel` ends the input empty:
 * it moves nothing and removes the staging folder.
 */
function openAhead(ctx: ApplyContext, stage: string): { run(input: Buffer): Promise<ExecResult>; cancel(): void } {
  const input = new PassThrough();
  const mover = ctx.conn.exec(moverCommand(ctx.remoteRoot, stage, ctx.conn.listedRoots.get(ctx.remoteRoot)), input, { signal: ctx.signal });
  mover.catch(() => undefined);
  let ended = false;
  const end = (data?: Buffer): void => {
    if (ended) return;
    ended = true;
    input.end(data);
  };
  return {
    run: (data) => {
      end(data);
      return mover;
    },
    cancel: () => end(),
  };
}

/** For the in-process tar: the archive needs exactly `size` bytes, so a failed read is padded and marked. */
async function* padOnFailure(source: AsyncGenerator<Buffer>, f: PlanItem, skip: (rel: string, e: LocalReadError) => void): AsyncGenerator<Buffer> {
  let sent = 0;
  try {
    for await (const b of source) {
      sent += b.length;
      yield b;
    }
  } catch (e) {
    if (!(e instanceof LocalReadError)) throw e;
    skip(f.rel, e);
    for (let left = f.entry.size - sent; left > 0; left -= 256 * 1024) yield Buffer.alloc(Math.min(left, 256 * 1024));
  }
}

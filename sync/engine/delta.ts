/**
 * Changed-blocks transfer for large files whose remote copy exists (issue 13, "Large files"): only the
 * blocks that differ cross the wire, with nothing but sh and coreutils on the server.
 *
 * 1. At once: the server copies its file to a temporary name and hashes its blocks (XXH3-128, or SHA-1
 *    where it has no `xxh128sum`: block-hash.ts; delta-remote.ts), while the runner reads the local file
 *    once, hashing the same blocks and making the whole file's digest (streamed, one read buffer at a
 *    time; again the server's way if it hashed another way than the runner guessed).
 * 2. The blocks whose hash or length differ are sent on the script's stdin and written into the copy
 *    at their offsets (delta-write.ts), read again from the local file, which must still have its
 *    planned size.
 * 3. If the local file did not change meanwhile, the server sets the exact size, checks the whole
 *    copy's digest against the local file's, sets the file's mode and mtime, checks that its own file is
 *    still the one it copied, and renames the copy over it (`commit`, sent right after the blocks: no
 *    round trip of its own).
 *
 * Anything unexpected (a tool missing, an unreadable remote file, a checksum mismatch, the remote file
 * changed meanwhile) is a DeltaFallback: the copy is removed and the file is sent whole. A local file
 * that changed is a LocalReadError, as on the whole-file path: the remote file stays as it was.
 *
 * Fixed-offset blocks: an insertion shifts every later block, so everything after it is sent (still
 * never more than the whole file plus the checksums). rsync's rolling checksum would find the shifted
 * blocks; that needs a program on the server.
 */
import * as path from 'node:path';
import { ApplyContext, ApplyResult } from './apply-common';
import { Limiter } from './apply-sftp';
import { BlockCache, rememberable } from './block-cache';
import { BlockHashKind, blockHasher, HASH_ORDER, wholeDigest } from './block-hash';
import { BlockSum, DeltaFallback, RemoteDelta } from './delta-remote';
import { joinRanges, sendRanges } from './delta-write';
import { changedSince, LocalReadError, readAhead } from './local-read';
import { withWritableParents } from './remote-fix';
import { Plan, PlanItem } from './plan';

/**
 * Files from this size up, with a remote copy of at least a quarter of it, go by changed blocks. Measured
 * (one 64 KiB change, loaded 2-core machine, medians of 3): whole vs changed blocks 0.70 vs 0.95 s at
 * 16 MiB and 1.37 vs 1.13 s at 32 MiB over 127.0.0.1; 2.15 vs 1.87 s at 16 MiB with 50 ms round trips.
 */
export const DELTA_MIN_BYTES = 16 * 1024 * 1024;
/**
 * While the server finishes its copy and, at the commit, checks the whole copy (cp, then xxh128sum or
 * cksum), it prints nothing: the stall watchdog allows that much more quiet, as long as twice the
 * file (the remote copy may be twice the local size) at this rate. A 4 GiB file took 5.8 s of quiet here (cached); a volume at 50-125 MB/s that cannot keep
 * the copy cached reads it back: 10 MB/s leaves room for both passes on such a disk.
 */
const SERVER_QUIET_BYTES_PER_MS = 10_000;
/** About this many blocks per file, each a power of two between the two bounds below. */
const BLOCKS_PER_FILE = 2048;
const MIN_BLOCK = 64 * 1024;
const MAX_BLOCK = 4 * 1024 * 1024;
/** Large files sent by changed blocks at the same time. */
const DELTA_PARALLEL = 2;

/** The block size for a file of `size` bytes: size / 2048 rounded up to a power of two, in [64 KiB, 4 MiB]. */
export function blockSizeFor(size: number): number {
  let b = MIN_BLOCK;
  while (b < MAX_BLOCK && b * BLOCKS_PER_FILE < size) b *= 2;
  return b;
}

/** Local reads: 4 MiB (a whole number of blocks: they are powers of two up to MAX_BLOCK), the next one read while this one is hashed. */
const READ_PIECE = 4 * 1024 * 1024;

/** The local file as read once: each block's hash and the whole file's digest (block-hash.ts wholeDigest). */
export interface LocalSums {
  readonly blocks: BlockSum[];
  readonly whole: string;
}

/** Reads exactly `size` bytes of `abs` once: each block's hash, the `kind` way, and the whole file's digest. */
export async function localSums(abs: string, rel: string, size: number, blockSize: number, kind: BlockHashKind): Promise<LocalSums> {
  const hash = await blockHasher(kind);
  const whole = await wholeDigest(kind);
  const blocks: BlockSum[] = [];
  for await (const buf of readAhead(abs, rel, size, Math.max(READ_PIECE, blockSize))) {
    whole.update(buf);
    for (let off = 0; off < buf.length; off += blockSize) {
      const b = buf.subarray(off, Math.min(off + blockSize, buf.length));
      blocks.push({ sum: hash(b), size: b.length });
    }
  }
  return { blocks, whole: whole.digest() };
}

/** Byte ranges [start, end) of the local file to write: differing blocks, adjacent ones joined. */
export function changedRanges(local: readonly BlockSum[], remote: readonly BlockSum[], blockSize: number): [number, number][] {
  const out: [number, number][] = [];
  local.forEach((b, i) => {
    const r = remote[i];
    const start = i * blockSize;
    if (!r || r.sum !== b.sum || r.size !== b.size) {
      const last = out[out.length - 1];
      if (last && last[1] === start) last[1] = start + b.size;
      else out.push([start, start + b.size]);
    }
  });
  return out;
}

/**
 * Whether `item` goes by changed blocks: large, and its remote copy a file of at least a quarter and at
 * most twice its size. The server copies and hashes the whole remote copy: one much larger than the
 * local file (a log the container kept writing) cost more than the file sent whole (a 16 GiB copy for
 * a 20 MiB file: 262,144 pipes, 23 s, against 0.19 s), and its copy took room the container needed
 * (a whole send peaks at remote plus local, the changed blocks at twice the remote).
 */
export function deltaCandidate(ctx: ApplyContext, item: PlanItem): boolean {
  const r = ctx.remote.get(item.rel);
  return item.entry.size >= DELTA_MIN_BYTES && r?.type === 'file' && r.size >= item.entry.size / 4 && r.size <= item.entry.size * 2;
}

/** Whether the folder holding `rel` is read-only on the server (withWritableParents opens it for the transfer only). */
function closedAgain(ctx: ApplyContext, rel: string): boolean {
  const parent = path.posix.dirname(rel);
  if (parent === '.') return false; // the root is never opened
  const e = ctx.remote.get(parent);
  return e?.type !== 'dir' || (e.mode & 0o700) !== 0o700;
}

/**
 * Sends one file by changed blocks; returns the bytes written. Throws DeltaFallback or LocalReadError.
 * With a cache (ctx.blockCache), the server is told what the runner last put there; a DeltaFallback
 * forgets it, a success remembers the new file.
 */
export async function sendDelta(ctx: ApplyContext, item: PlanItem, hooks: DeltaHooks = {}): Promise<number> {
  try {
    return await sendBlocks(ctx, item, hooks);
  } catch (e) {
    if (e instanceof DeltaFallback) ctx.blockCache?.drop(item.rel);
    throw e;
  }
}

async function sendBlocks(ctx: ApplyContext, item: PlanItem, hooks: DeltaHooks): Promise<number> {
  const abs = path.join(ctx.localRoot, item.rel);
  const size = item.entry.size;
  const blockSize = blockSizeFor(size);
  const writable = ((ctx.remote.get(item.rel)?.mode ?? 0) & 0o200) !== 0;
  const cached = ctx.blockCache?.get(item.rel);
  const known = cached?.blockSize === blockSize ? cached : undefined;
  const kinds = hooks.kinds ?? HASH_ORDER;
  // The local blocks are hashed while the server hashes its own: the way the cache says the server
  // hashed last time, else the best way (the server tells which it used: block-hash.ts).
  const guess = known?.kind ?? kinds[0];
  ctx.onStep?.(`checksumming '${item.rel}' (changed blocks)`);
  const sums = ctx.earlySums?.take(item.rel, item.entry, blockSize, guess) ?? localSums(abs, item.rel, size, blockSize, guess);
  // The server's side: begun before the listing (delta-early.ts) if it was for this very transfer.
  const begin = async (): Promise<RemoteDelta & { blocks: BlockSum[] }> =>
    (await ctx.earlyRemote?.take(item.rel, { conn: ctx.conn, blockSize, knownId: known?.id ?? '', kinds })) ?? RemoteDelta.start(ctx.conn, item.rel, ctx.remoteRoot, { blockSize, writable, known, kinds, localSize: size, onProgress: () => ctx.onBytes?.(0) });
  const [rs, ls] = await Promise.allSettled([begin(), sums]);
  if (rs.status === 'rejected') throw rs.reason;
  const remote = rs.value;
  // The server takes ranges once its copy is made (cp of the whole remote copy, at most twice the local
  // size: the script refuses a larger one), then checks the copy whole at the commit: neither prints.
  const release = ctx.allowQuiet?.(Math.ceil((2 * size) / SERVER_QUIET_BYTES_PER_MS));
  try {
    if (ls.status === 'rejected') throw ls.reason;
    const local = remote.kind === guess ? ls.value : await localSums(abs, item.rel, size, blockSize, remote.kind);
    await hooks.afterPrepare?.(remote);
    const ranges = joinRanges(changedRanges(local.blocks, remote.blocks, blockSize));
    ctx.onStep?.(`writing ${ranges.length} changed ranges of '${item.rel}'`);
    const written = await sendRanges(remote, abs, item.rel, { size, blockSize, kind: remote.kind, blocks: local.blocks }, ranges, ctx.onBytes);
    await hooks.beforeCommit?.(remote);
    // The last look before the name changes: a file edited while it was sent is not put in place.
    if (changedSince(abs, item.entry)) throw new LocalReadError(item.rel, 'changed', `'${item.rel}' changed while it was sent`);
    const mtime = Math.floor(item.entry.mtimeMs / 1000);
    ctx.onStep?.(`checking and putting in place the changed copy of '${item.rel}'`);
    const id = await remote.commit(local.whole, size, item.entry.mode, mtime, { waitEnd: closedAgain(ctx, item.rel) });
    // What the server holds now is the local file (its digest checked): its blocks are the local ones.
    if (ctx.blockCache) remember(ctx.blockCache, item.rel, rememberable(id, size, mtime) ? id : '', { kind: remote.kind, local: local.blocks, blockSize });
    return written;
  } catch (e) {
    await remote.abort();
    throw e;
  } finally {
    release?.();
  }
}

/** Keeps what the remote file `rel` now holds: its identity `id` ('' forgets it) and each block's hash. */
function remember(cache: BlockCache, rel: string, id: string, b: { kind: BlockHashKind; local: readonly BlockSum[]; blockSize: number }): void {
  if (!id) return cache.drop(rel);
  cache.put(rel, { id, blockSize: b.blockSize, kind: b.kind, sums: b.local.map((s) => s.sum) });
}

/** Test hooks: run between the steps (the remote copy modified, the local file cut...). */
export interface DeltaHooks {
  readonly afterPrepare?: (r: RemoteDelta) => Promise<void> | void;
  readonly beforeCommit?: (r: RemoteDelta) => Promise<void> | void;
  /** Told why a file is sent whole after all. */
  readonly onFallback?: (why: string) => void;
  /** The block hashes the server may use, best first (default HASH_ORDER): tests force the SHA-1 way. */
  readonly kinds?: readonly BlockHashKind[];
}

/**
 * The remote as the whole-file part of `plan` left it, for what runs after it: its folders with the
 * plan's modes. A folder the plan opened (chmod from 0555 to 0755, say) is then not "restored" to its
 * old mode by the changed-blocks transfers into it (withWritableParents closes only what it opened).
 */
function afterWhole(ctx: ApplyContext, plan: Plan): ApplyContext {
  const dirs = new Map<string, PlanItem['entry']>();
  for (const i of [...plan.dirs, ...plan.chmods]) if (i.entry.type === 'dir') dirs.set(i.rel, i.entry);
  if (dirs.size === 0) return ctx;
  return { ...ctx, remote: { get: (rel) => dirs.get(rel) ?? ctx.remote.get(rel) } };
}

/**
 * Applies `plan`: the whole-file way (`whole`) for everything but large files with a remote copy, which
 * then go by changed blocks; one that cannot (DeltaFallback) is sent whole after all.
 */
export async function withDeltas(ctx0: ApplyContext, plan: Plan, whole: (c: ApplyContext, p: Plan) => Promise<ApplyResult>, hooks: DeltaHooks = {}): Promise<ApplyResult> {
  const big = plan.files.filter((f) => deltaCandidate(ctx0, f));
  if (big.length === 0) return whole(ctx0, plan);
  const rest = await whole(ctx0, { ...plan, files: plan.files.filter((f) => !big.includes(f)) });
  const ctx = afterWhole(ctx0, plan);
  const fallback: PlanItem[] = [];
  const res = { changed: [...rest.changed], unsent: [...rest.unsent], warnings: [...rest.warnings], bytes: rest.bytes, method: 'sftp' as ApplyResult['method'] };
  const limit = new Limiter(DELTA_PARALLEL);
  // The copy is made beside the file: a read-only folder is opened for it and closed again after.
  const only = { deletes: [], dirs: [], files: big, links: [], chmods: [] };
  const one = async (f: PlanItem): Promise<void> => {
    try {
      await sendDelta(ctx, f, hooks);
      res.bytes += f.entry.size;
    } catch (e) {
      if (e instanceof DeltaFallback) {
        hooks.onFallback?.(e.message);
        fallback.push(f);
      }
      else if (e instanceof LocalReadError) {
        res.unsent.push(f.rel);
        if (e.kind === 'changed') res.changed.push(f.rel);
        else res.warnings.push(e.message);
      } else throw e;
    }
  };
  await withWritableParents(ctx, only, () => Promise.all(big.map((f) => limit.run(() => one(f)))));
  if (fallback.length > 0) {
    const again = await whole(ctx, { ...only, files: fallback });
    res.changed.push(...again.changed);
    res.unsent.push(...again.unsent);
    res.warnings.push(...again.warnings);
    res.bytes += again.bytes;
  }
  if (rest.method === 'tar') res.method = 'tar';
  return res;
}

export { DeltaFallback } from './delta-remote';

/**
 * Changed-blocks work started before the remote listing is in.
 *
 * EarlySums — local block sums: a large file the runner last sent by
 * changed blocks (block-cache.ts) whose size or mtime changed since is about to go by changed blocks
 * again, so its local read and hashing (about 150 ms per 200 MiB) can run while the SSH handshake and the
 * listing wait on the server, instead of after them.
 *
 * A result is used only for the file as the plan has it: same size and mtime as when the early read
 * began, same block size. What happens to the file after that is caught as on the usual path: each sent
 * block is read again and checked against its hash, and the file's size and mtime are looked at again
 * just before the rename.
 *
 * EarlyRemote — the server's copy and block hashes: as soon as the connection is up and the local scan
 * is done, the server copies and hashes the largest local files (delta-remote.ts) while it lists the
 * tree, instead of after the plan (about 0.3 s of server work per 200 MiB, measured here). Each script
 * is told the local file's size and mtime and stops at once, having written nothing, when its own file
 * has both (the plan will not send it) or is too small to go by changed blocks: a no-op re-attach costs
 * one `find` per large file, beside the listing. It checks the root as the listing's preparation does.
 *
 * Nothing is decided here either: the plan says what is sent and how. `take` hands a script on only for
 * the transfer as the plan has it (same connection, block size, cache entry and hashes allowed); one
 * that stopped or failed is not handed on (the transfer starts its own, after opening a read-only
 * folder if it must). `dropRest` ends those not taken, waiting for each to remove its copy. Their
 * temporary names are the runner's own (`.kubedev-`), so the listing may report them as leftovers:
 * `owns` keeps the pass from deleting them under the script.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockCache, blockCacheDir, blockCacheFor, changedSinceSentHow } from './block-cache';
import { BlockHashKind, HASH_ORDER } from './block-hash';
import { blockSizeFor, DELTA_MIN_BYTES, LocalSums, localSums } from './delta';
import { BlockSum, RemoteDelta } from './delta-remote';
import { placeIs } from './remote-place';
import { Connection } from './transport';
import { CompactIndex } from './index-store';
import { Tree } from './tree';

interface Early {
  readonly size: number;
  readonly mtimeMs: number;
  readonly blockSize: number;
  readonly kind: BlockHashKind;
  readonly sums: Promise<LocalSums>;
}

/** EarlySums.start with the cache folder option (`false`: no cache, nothing early; default blockCacheDir()). */
export function earlySumsFor(cacheDir: string | false | undefined, remoteRoot: string, localRoot: string): EarlySums | undefined {
  return cacheDir === false ? undefined : EarlySums.start(cacheDir ?? blockCacheDir(), remoteRoot, localRoot);
}

export class EarlySums {
  private readonly started = new Map<string, Early>();

  /** Starts hashing the files under `localRoot` that changed since they were sent to `remoteRoot` (cache folder `cacheDir`). */
  static start(cacheDir: string, remoteRoot: string, localRoot: string): EarlySums {
    const e = new EarlySums();
    for (const [rel, kind] of changedSinceSentHow(cacheDir, remoteRoot, localRoot)) {
      const abs = path.join(localRoot, rel);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(abs, { throwIfNoEntry: false });
      } catch {
        continue;
      }
      if (!st?.isFile() || st.size < DELTA_MIN_BYTES) continue;
      const blockSize = blockSizeFor(st.size);
      // Hashed the way the server hashed it last time (the cache says), the way it will most likely hash again.
      const sums = localSums(abs, rel, st.size, blockSize, kind);
      sums.catch(() => undefined); // taken (and its failure reported) by the transfer, or dropped
      e.started.set(rel, { size: st.size, mtimeMs: st.mtimeMs, blockSize, kind, sums });
    }
    return e;
  }

  get size(): number {
    return this.started.size;
  }

  /** The early sums of `rel` if they were made of the file as `entry` says it is, in blocks of `blockSize` hashed the `kind` way. */
  take(rel: string, entry: { size: number; mtimeMs: number }, blockSize: number, kind: BlockHashKind): Promise<LocalSums> | undefined {
    const e = this.started.get(rel);
    this.started.delete(rel);
    return e && e.size === entry.size && e.mtimeMs === entry.mtimeMs && e.blockSize === blockSize && e.kind === kind ? e.sums : undefined;
  }
}

/** Files the server starts on early, at most: the transfer's own parallelism (delta.ts). */
const MAX_EARLY = 2;

type Ready = RemoteDelta & { blocks: BlockSum[] };

interface Begun {
  readonly blockSize: number;
  readonly knownId: string;
  readonly kinds: readonly BlockHashKind[];
  readonly temp: string;
  /** The script with its block hashes, or undefined if it stopped or failed. */
  readonly ready: Promise<Ready | undefined>;
}

export class EarlyRemote {
  private readonly begun = new Map<string, Begun>();
  private readonly taken = new Set<string>();

  private constructor(readonly conn: Connection, private readonly root: string) {}

  /**
   * Starts the server's copy and hashing of the largest files in `tree` (the local scan's) of
   * DELTA_MIN_BYTES or more, under `remoteRoot` on `conn`.
   */
  static start(conn: Connection, remoteRoot: string, tree: Tree, o: { cache?: BlockCache; kinds?: readonly BlockHashKind[]; onProgress: () => void }): EarlyRemote {
    const e = new EarlyRemote(conn, remoteRoot);
    const big = tree instanceof CompactIndex ? tree.filesFrom(DELTA_MIN_BYTES) : [...tree].filter(([, f]) => f.type === 'file' && f.size >= DELTA_MIN_BYTES);
    big.sort((x, y) => y[1].size - x[1].size);
    const kinds = o.kinds ?? HASH_ORDER;
    for (const [rel, f] of big.slice(0, MAX_EARLY)) {
      const blockSize = blockSizeFor(f.size);
      const cached = o.cache?.get(rel);
      const known = cached?.blockSize === blockSize ? cached : undefined;
      // The remote mode is not known yet: the copy is made writable (commit sets the mode).
      const run = RemoteDelta.begin(conn, rel, remoteRoot, { blockSize, writable: false, known, kinds, onProgress: o.onProgress, unless: { size: f.size, mtime: Math.floor(f.mtimeMs / 1000) } });
      const ready = run.ready.then(
        (d) => d,
        () => undefined, // stopped (nothing to do) or failed: the transfer, if any, starts its own
      );
      e.begun.set(rel, { blockSize, knownId: known?.id ?? '', kinds, temp: run.temp, ready });
    }
    return e;
  }

  /**
   * Whether the remote path `rel` (a leftover the listing found) is one of these scripts' temporary files,
   * on a connection still up: once it dropped, none of them can be taken (their copies are a killed run's
   * leftovers, for the retried pass to delete).
   */
  owns(rel: string): boolean {
    if (!this.conn.alive) return false;
    for (const [file, b] of this.begun) {
      const slash = file.lastIndexOf('/');
      const temp = `${slash < 0 ? '' : file.slice(0, slash + 1)}${b.temp}`;
      if (rel === temp || rel.startsWith(`${temp}.`)) return true;
    }
    return false;
  }

  /** The script begun for `rel` if it was begun for this transfer (same connection, block size, cache entry, hashes) and got its block hashes. */
  async take(rel: string, o: { conn: Connection; blockSize: number; knownId: string; kinds: readonly BlockHashKind[] }): Promise<Ready | undefined> {
    const b = this.begun.get(rel);
    if (!b || this.taken.has(rel)) return undefined;
    if (o.conn !== this.conn || b.blockSize !== o.blockSize || b.knownId !== o.knownId || b.kinds.join() !== o.kinds.join()) return undefined;
    this.taken.add(rel);
    // Begun before the listing, it entered the root before its place was known: one that entered
    // another place than the listing found (the root replaced by a symlink meanwhile) is dropped, and
    // the transfer starts its own script, which checks (remote-place.ts).
    const ready = await b.ready;
    const listed = o.conn.listedRoots.get(this.root);
    if (ready && listed && !(ready.place !== undefined && placeIs(listed, ready.place))) {
      await ready.abort();
      return undefined;
    }
    return ready;
  }

  /** Ends the scripts not taken (each removes its copy) and waits for them. */
  async dropRest(): Promise<void> {
    const rest = [...this.begun].filter(([rel]) => !this.taken.has(rel));
    for (const [rel] of rest) this.taken.add(rel);
    await Promise.all(rest.map(async ([, b]) => (await b.ready)?.abort()));
  }
}

/**
 * A session's first-pass work begun early: the local sums once the first scan is done, the server's
 * scripts once that scan and the first connection are both there (whichever comes last begins them).
 * `end`, after the first pass, drops what was not used.
 */
export class EarlyWork {
  private sums?: EarlySums;
  private remote?: EarlyRemote;
  /** The first scan's tree until the server's scripts begin. */
  private scanned?: Tree;

  constructor(private readonly o: { readonly blockCache?: string | false; readonly remoteRoot: string; readonly localRoot: string; readonly onProgress: () => void }) {}

  /** The first local scan is done: the local sums start now, the server's scripts too if `conn` is up. */
  scanDone(tree: Tree, conn: Connection | undefined): void {
    this.sums = earlySumsFor(this.o.blockCache, this.o.remoteRoot, this.o.localRoot);
    this.scanned = tree;
    this.connected(conn);
  }

  /** The first connection is up (or `conn` is the live one): the server's scripts begin if the scan is done. */
  connected(conn: Connection | undefined): void {
    if (!this.scanned || !conn?.alive || this.remote) return;
    this.remote = EarlyRemote.start(conn, this.o.remoteRoot, this.scanned, { cache: blockCacheFor(this.o.blockCache, conn.fingerprint, this.o.remoteRoot), onProgress: this.o.onProgress });
    this.scanned = undefined;
  }

  /** Whether the remote leftover `rel` is a script's temporary file (not to be deleted under it). */
  owns(rel: string): boolean {
    return this.remote?.owns(rel) ?? false;
  }

  /** What an apply on `conn` may take. */
  forApply(conn: Connection): { earlySums?: EarlySums; earlyRemote?: EarlyRemote } {
    return { earlySums: this.sums, earlyRemote: this.remote?.conn === conn ? this.remote : undefined };
  }

  /** After the first pass: what was begun and not used is ended (the server's copies removed). */
  async end(): Promise<void> {
    this.sums = undefined;
    this.scanned = undefined;
    const r = this.remote;
    this.remote = undefined;
    await r?.dropRest();
  }
}

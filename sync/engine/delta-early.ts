/**
 * Local block sums started before the remote listing is in: a large file the runner last sent by
 * changed blocks (block-cache.ts) whose size or mtime changed since is about to go by changed blocks
 * again, so its local read and hashing (about 150 ms per 200 MiB) can run while the SSH handshake and the
 * listing wait on the server, instead of after them.
 *
 * A result is used only for the file as the plan has it: same size and mtime as when the early read
 * began, same block size. What happens to the file after that is caught as on the usual path: each sent
 * block is read again and checked against its hash, and the file's size and mtime are looked at again
 * just before the rename.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blockCacheDir, changedSinceSentHow } from './block-cache';
import { BlockHashKind } from './block-hash';
import { blockSizeFor, DELTA_MIN_BYTES, localSums } from './delta';
import { BlockSum } from './delta-remote';

interface Early {
  readonly size: number;
  readonly mtimeMs: number;
  readonly blockSize: number;
  readonly kind: BlockHashKind;
  readonly sums: Promise<BlockSum[]>;
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
  take(rel: string, entry: { size: number; mtimeMs: number }, blockSize: number, kind: BlockHashKind): Promise<BlockSum[]> | undefined {
    const e = this.started.get(rel);
    this.started.delete(rel);
    return e && e.size === entry.size && e.mtimeMs === entry.mtimeMs && e.blockSize === blockSize && e.kind === kind ? e.sums : undefined;
  }
}

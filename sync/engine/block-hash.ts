/**
 * The hash that says whether a block of a large file changed (delta.ts): XXH3-128 where the server has
 * `xxh128sum` (Debian's `xxhash`, in kubedev's sidecar image), else SHA-1 (`sha1sum`, every coreutils).
 *
 * Why two: coreutils' SHA-1 is the server's largest cost in a changed-blocks transfer. It hashes about
 * 380 MB/s on one core, while `xxh128sum` hashes the same 1,600 block files of a 200 MiB file in 0.02 s
 * of user time against 0.56 s (measured here). The runner hashes its side with the same algorithm: SHA-1
 * by OpenSSL (node:crypto), XXH3-128 by hash-wasm's WebAssembly build (84 ms per 200 MiB here, against
 * 150 ms for SHA-1). XXH3-128 is what rsync 3.2+ negotiates as its strong checksum: not a cryptographic
 * hash, but two different blocks of a developer's file agree on 128 bits by chance with probability
 * 2^-128; the copy is still checked whole (wholeDigest below) before it replaces the file.
 */
import * as crypto from 'node:crypto';
import { cksumOf, crcUpdate } from './cksum';

export type BlockHashKind = 'xxh128' | 'sha1';

/** The server's tool for each kind, in the order the server tries them. */
export const HASH_TOOLS: Readonly<Record<BlockHashKind, string>> = { xxh128: 'xxh128sum', sha1: 'sha1sum' };
/** Hex digits of each kind's digest. */
export const HASH_HEX: Readonly<Record<BlockHashKind, number>> = { xxh128: 32, sha1: 40 };
/** The kinds tried, best first. */
export const HASH_ORDER: readonly BlockHashKind[] = ['xxh128', 'sha1'];

/** The kind whose server tool is `tool`, if any. */
export function kindOfTool(tool: string): BlockHashKind | undefined {
  return HASH_ORDER.find((k) => HASH_TOOLS[k] === tool);
}

/** Hashes one block, synchronously: hex digest. */
export type BlockHasher = (b: Uint8Array) => string;

const sha1: BlockHasher = (b) => crypto.createHash('sha1').update(b).digest('hex');
let xxh: Promise<BlockHasher> | undefined;

/**
 * The hasher for `kind`. XXH3-128's WebAssembly module is loaded on first use (10 ms, only by runs that
 * send a large file by changed blocks); one instance serves every caller, each digest being made in one
 * synchronous init-update-digest.
 */
export function blockHasher(kind: BlockHashKind): Promise<BlockHasher> {
  if (kind === 'sha1') return Promise.resolve(sha1);
  xxh ??= import('hash-wasm').then(async ({ createXXHash128 }) => {
    const h = await createXXHash128();
    return (b: Uint8Array): string => {
      h.init();
      h.update(b);
      return h.digest('hex');
    };
  });
  return xxh;
}

/** A whole file's digest, made piece by piece in the order of the file. */
export interface WholeDigest {
  update(b: Uint8Array): void;
  /** As the server's check compares it (delta-remote.ts, commit): `x:HEX` (XXH3-128) or `c:CRC` (cksum). */
  digest(): string;
}

/**
 * The digest the server checks the whole new file against, for blocks hashed the `kind` way: XXH3-128
 * with XXH3-128 blocks (`xxh128sum` hashes 200 MiB in 0.03 s), else POSIX `cksum`'s CRC (with SHA-1
 * blocks the server has no xxhash, and `sha1sum` would take 0.55 s over 200 MiB; `cksum` 0.06 s). The
 * runner makes it while it reads the file for its block hashes: its own instance, so digests of two
 * files made at once never mix.
 */
export async function wholeDigest(kind: BlockHashKind): Promise<WholeDigest> {
  if (kind === 'sha1') {
    let crc = 0;
    let size = 0;
    return {
      update: (b) => {
        crc = crcUpdate(crc, b);
        size += b.length;
      },
      digest: () => `c:${cksumOf(crc, size)}`,
    };
  }
  const { createXXHash128 } = await import('hash-wasm');
  const h = await createXXHash128();
  return { update: (b) => void h.update(b), digest: () => `x:${h.digest('hex')}` };
}

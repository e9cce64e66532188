/**
 * The server's side of a changed-blocks transfer, with stock tools only (sh, coreutils, GNU find), as
 * one `sh` per file on one exec channel (a process per step, never one per block: `split --filter`
 * forks a shell per block, 4 ms each on a loaded machine):
 *
 * 1. `cp` copies the remote file to a temporary name beside it while one `split` cuts it into block
 *    files, then hashed by one `xxh128sum` (or `sha1sum` where the server has no xxhash: block-hash.ts)
 *    and one `cksum` at once; the block files are removed in the background once hashed (not later: the
 *    folder may be writable only while the runner sends). With XXH3-128 the hashing is cheap and the
 *    server's cost is moving bytes (kernel time): one `split` reading the file itself moves fewer than
 *    two halves piped through `head` and `tail` (0.64 against 0.8 s of CPU for 200 MiB, measured here). The script prints the file's `size mtime` (find -printf), the hash tool it used, the block
 *    hashes, the block cksums, and reads its stdin.
 *    Blocks are compared by a 128- or 160-bit hash, not CRC-32: a block is left as it is only when its
 *    hash matches, and a CRC is linear (a changed block keeping its CRC-32 would also keep the whole
 *    file's, so the final check could not catch it). The final check stays a CRC (`cksum`, memory
 *    speed): it catches what happens to the copy after hashing and any write gone wrong.
 * 2. The runner sends the differing ranges on stdin, `w OFFSET LENGTH` then the bytes, each written
 *    into the copy by one `dd` (exactly LENGTH bytes read; delta-write.ts), then
 *    `commit SUM SIZE MODE MTIME .`; or it closes stdin to give up (the script then removes the copy).
 * 3. On `commit`, the script sets the size, checksums the whole copy, compares it with the local file's,
 *    sets the mode and mtime, checks that the remote file is still the one it copied, and renames the
 *    copy over it. On any failure (a write, the disk full, a mismatch) it removes the copy and says why.
 *
 * Temporary names start with `.kubedev-`: a killed run's leftovers are deleted by the next pass.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { ClientChannel } from 'ssh2';
import { CachedFile } from './block-cache';
import { BlockHashKind, HASH_HEX, HASH_ORDER, HASH_TOOLS, kindOfTool } from './block-hash';
import { crcOfCksum } from './cksum';
import { remoteRootShellCheck } from '../../lib/remote-root';
import { Connection } from './transport';
import { shQuote } from './tree';

/** The local file's size and whole-second mtime, for a script started before the listing: it stops when the remote file has both. */
export interface Unless {
  readonly size: number;
  readonly mtime: number;
}

/** A block: the hash of its bytes (hex, block-hash.ts) and its length. */
export interface BlockSum {
  readonly sum: string;
  readonly size: number;
}

/** A remote block: also its raw CRC-32 (from what `cksum` printed for it: the whole file's expected checksum). */
export interface RemoteBlock extends BlockSum {
  readonly crc: number;
}

/** Something the changed-blocks path cannot handle: the caller sends the file whole instead. */
export class DeltaFallback extends Error {
  constructor(readonly rel: string, why: string) {
    super(`changed-blocks transfer of '${rel}' not possible (${why})`);
    this.name = 'DeltaFallback';
  }
}

const MARK = 'KUBEDEV-DELTA';
/** What identifies the remote file: `size mtime inode ctime` (a write, chmod or rename sets the ctime). */
const IDENTITY = "-printf '%s %T@ %i %C@'";

/**
 * The script for the file `name` in the current folder, its copy `temp` (a plain name) there too. `cp`
 * copies while `split` cuts the file into block files; they are hashed by the first of `kinds` the
 * server has, and `cksum`ed, at once.
 */
export function deltaScript(root: string, dir: string, name: string, temp: string, blockSize: number, writable: boolean, known = '', kinds: readonly BlockHashKind[] = HASH_ORDER, early?: Unless): string {
  // The file's folder entered physically and checked to be that folder of the physical root: a folder the
  // server replaced by a symlink since the listing is not worked in (the file then goes whole, by a path
  // that checks too).
  const enter =
    dir === ''
      ? [`cd -P -- ${shQuote(root)} || exit 65`]
      : [
          `cd -P -- ${shQuote(root)} || exit 65`,
          'r=$(pwd -P)',
          `cd -P -- ./${shQuote(dir)} || exit 65`,
          `[ "$(pwd -P)" = "$r"/${shQuote(dir)} ] || { echo "its folder resolves outside the root (a symlink made on the server)" >&2; exit 65; }`,
        ];
  // Started before the listing (delta-early.ts): the root is checked as the listing's preparation checks
  // it (nothing is written under a root it refuses), and the script stops having copied nothing when
  // the remote file will not go by changed blocks: its size and whole-second mtime are the local file's
  // (the plan leaves it), or it is under a quarter of the local size (deltaCandidate).
  const ahead = early
    ? [
        `real=$(realpath -m -- ${shQuote(root)} 2>/dev/null) || exit 65`,
        `( ${remoteRootShellCheck('real', 65)} ) || { echo "the root resolves to a refused place" >&2; exit 65; }`,
        // The rest of the preparation's checks (remote.ts): a root it refuses as not a writable folder, or
        // on a server without tar or find, gets nothing written either (a folder inside may be writable).
        `[ -d ${shQuote(root)} ] && [ -w ${shQuote(root)} ] && [ -x ${shQuote(root)} ] || { echo "the root is not a folder the user may write" >&2; exit 65; }`,
        'command -v tar >/dev/null 2>&1 && command -v find >/dev/null 2>&1 || { echo "the server has no tar or find" >&2; exit 65; }',
      ]
    : [];
  const skip = early
    ? [
        'z=${s%% *} m=${s#* }; m=${m%%[. ]*}',
        `if [ "$z" = ${early.size} ] && [ "$m" = ${early.mtime} ] || [ $((z * 4)) -lt ${early.size} ]; then printf '%s skip\n' ${MARK}; exit 0; fi`,
      ]
    : [];
  return [
    ...ahead,
    ...enter,
    `f=./${shQuote(name)} t=${temp} ok= pc= ph= hs=`,
    // On any exit (set +e: a failed job must not stop the cleanup), cp and the hashing are
    // waited for first: they would write after the removal. Their ids ($pc, $ph) are names of their own:
    // the command loop below reads into a..e.
    // The folder may have been made read-only by the server since the copy was made (a container's
    // process): then it is opened for the removal only and given its mode back (else the copy and its
    // block files, twice the file's size, would stay beside it).
    'gone() { rm -f -- "$@" 2>/dev/null && return; m=$(stat -c %a .) && chmod u+w . && { rm -f -- "$@"; chmod "$m" .; }; }',
    `trap 'set +e; for p in $pc $ph; do wait $p; done; if [ -n "$ok" ]; then gone "$t".[0-9]* "$t".[sc]; else gone "$t" "$t".[0-9]* "$t".[sc]; fi' EXIT`,
    // A dropped connection closes the script's output: its next write (split's, a printf) would kill it
    // by SIGPIPE, and a shell killed by a signal never runs its EXIT trap (the copy and the block files
    // would stay). Caught, the signal ends it through that trap.
    "trap 'exit 3' HUP INT TERM PIPE",
    `no() { printf '%s %s\\n' ${MARK} "$1"; exit 3; }`,
    // The block hash: the first of the tools the server has (block-hash.ts).
    `for x in ${kinds.map((k) => HASH_TOOLS[k]).join(' ')}; do command -v $x >/dev/null 2>&1 && { hs=$x; break; }; done`,
    // xxh128sum clears a progress line on stderr for each file unless quiet (sha1sum has no -q).
    'hq=; [ "$hs" = xxh128sum ] && hq=-q',
    `[ -n "$hs" ] || { echo "none of ${kinds.map((k) => HASH_TOOLS[k]).join(', ')} is installed" >&2; exit 65; }`,
    'set -e',
    `s=$(find "$f" -maxdepth 0 -type f ${IDENTITY})`,
    '[ -n "$s" ] || { echo "not a regular file" >&2; exit 65; }',
    ...skip,
    'cp -- "$f" "$t" & pc=$!',
    // Still the file the runner last wrote (block-cache.ts): its blocks are known, only the copy is made.
    `if [ "$s" = ${shQuote(known || '-')} ]; then`,
    `  printf '%s\\n%s\\ncached\\n%s end\\n' ${MARK} "$s" ${MARK}`,
    '  wait $pc',
    'else',
    `  split --verbose -a 6 -d -b ${blockSize} -- "$f" "$t."`,
    '  $hs $hq -- "$t".[0-9]* > "$t.s" & ph=$!',
    '  cksum -- "$t".[0-9]* > "$t.c"',
    '  wait $ph',
    '  wait $pc',
    `  printf '%s\\n%s\\n%s\\n' ${MARK} "$s" "$hs"`,
    '  cat -- "$t.s" "$t.c"',
    `  rm -f -- "$t".[0-9]* "$t".[sc] </dev/null >/dev/null 2>&1 &`,
    `  printf '%s end\\n' ${MARK}`,
    'fi',
    ...(writable ? [] : ['chmod u+w -- "$t"']),
    // The changed ranges: `w OFFSET LENGTH` then exactly LENGTH bytes (dd reads no further), a dd each.
    'while read -r cmd a b c d e && [ "$cmd" = w ]; do',
    '  dd of="$t" bs=65536 seek="$a" count="$b" iflag=fullblock,count_bytes oflag=seek_bytes conv=notrunc status=none || no write',
    'done',
    // `commit SUM SIZE MODE MTIME .`: anything else (the runner gave up, stdin ended) removes the copy.
    '[ "$cmd $e" = "commit ." ] || exit 3',
    // The size only when it changed (a process less; the check below covers the size either way).
    '[ "${s%% *}" = "$b" ] || truncate -s "$b" -- "$t" || no truncate',
    'set -- $(cksum < "$t")',
    '[ "$1 $2" = "$a $b" ] || no "verify $1 $2"',
    'chmod -- "$c" "$t" && touch -c -d "@$d" -- "$t" || no attributes',
    `[ "$(find "$f" -maxdepth 0 -type f ${IDENTITY})" = "$s" ] || no remote-changed`,
    'mv -fT -- "$t" "$f" || no rename',
    'ok=1',
    // The file's identity now, for the runner's cache (the rename set its ctime).
    `printf '%s ok %s\\n' ${MARK} "$(find "$f" -maxdepth 0 -type f ${IDENTITY} 2>/dev/null)"`,
  ].join('\n');
}

/**
 * Parses the output up to `MARK end`: the file's identity (`size mtime ino ctime`), then either `cached`
 * (it is the file `known` describes: its blocks are the cache's, hashed the cache's way) or the hash
 * tool's name, `hash  name.NNNNNN` per block in order, then `crc size name.NNNNNN` (cksum) per block in
 * order.
 */
export function parseBlocks(rel: string, out: string, blockSize: number, known?: CachedFile): { seen: string; cached: boolean; kind: BlockHashKind; blocks: RemoteBlock[] } {
  const lines = out.split('\n');
  const at = lines.indexOf(MARK);
  const end = lines.indexOf(`${MARK} end`);
  if (at < 0 || end < at + 1) throw new DeltaFallback(rel, 'the server printed no block checksums');
  const seen = lines[at + 1];
  const size = Number(seen.split(' ')[0]);
  if (!Number.isSafeInteger(size) || size < 0) throw new DeltaFallback(rel, `unexpected size line '${seen.slice(0, 80)}'`);
  const n = Math.ceil(size / blockSize);
  const len = (i: number): number => Math.min(blockSize, size - i * blockSize);
  const got = lines.slice(at + 2, end);
  if (got.length === 1 && got[0] === 'cached') {
    if (!known || seen !== known.id || known.blockSize !== blockSize || known.sums.length !== n || known.crcs.length !== n) throw new DeltaFallback(rel, `the server took '${seen.slice(0, 80)}' for the cached file`);
    return { seen, cached: true, kind: known.kind, blocks: known.sums.map((sum, i) => ({ sum, size: len(i), crc: known.crcs[i] })) };
  }
  const kind = kindOfTool(got[0] ?? '');
  if (!kind) throw new DeltaFallback(rel, `unexpected hash tool line '${(got[0] ?? '').slice(0, 80)}'`);
  if (got.length !== 1 + 2 * n) throw new DeltaFallback(rel, `${got.length - 1} checksum lines for ${size} bytes in blocks of ${blockSize}`);
  const sumLine = new RegExp(`^([0-9a-f]{${HASH_HEX[kind]}}) [ *]\\S+\\.(\\d{6,})$`);
  const sums = got.slice(1, 1 + n);
  const crcs = got.slice(1 + n);
  return {
    seen,
    cached: false,
    kind,
    blocks: sums.map((line, i) => {
      const m = sumLine.exec(line);
      const c = /^(\d+) (\d+) \S+\.(\d{6,})$/.exec(crcs[i]);
      if (!m || Number(m[2]) !== i) throw new DeltaFallback(rel, `unexpected checksum line '${line.slice(0, 80)}'`);
      if (!c || Number(c[2]) !== len(i) || Number(c[3]) !== i) throw new DeltaFallback(rel, `unexpected cksum line '${crcs[i].slice(0, 80)}'`);
      return { sum: m[1], size: len(i), crc: crcOfCksum(Number(c[1]), len(i)) };
    }),
  };
}

/** Whether `out` holds a whole line that is `line`, or `line`, a space and more. */
function hasLine(out: string, line: string): boolean {
  for (let i = out.indexOf(line); i >= 0; i = out.indexOf(line, i + 1)) {
    const after = out[i + line.length];
    if ((i === 0 || out[i - 1] === '\n') && (after === '\n' || (after === ' ' && out.includes('\n', i)))) return true;
  }
  return false;
}

interface StartOptions {
  readonly blockSize: number;
  /** Whether the remote file is writable by its owner (else the copy is made so). */
  readonly writable: boolean;
  readonly known?: CachedFile;
  readonly kinds?: readonly BlockHashKind[];
  readonly onProgress: () => void;
}

/** One file's script on its exec channel: the checksums once started, then `commit` or `abort`. */
export class RemoteDelta {
  private out = '';
  private err = '';
  private closed = false;
  private wake: () => void = () => undefined;

  private constructor(private readonly conn: Connection, private readonly ch: ClientChannel, readonly rel: string, readonly temp: string, onProgress: () => void) {
    ch.on('data', (d: Buffer) => {
      this.out += d.toString('utf8');
      onProgress();
      this.wake();
    });
    ch.stderr.on('data', (d: Buffer) => {
      if (this.err.length < 4096) this.err += d.toString('utf8');
    });
    ch.on('close', () => {
      this.closed = true;
      this.wake();
    });
    ch.on('error', () => undefined); // a write after the script ended: reported by send/commit
  }

  /**
   * Starts the script for the remote file `remoteAbs`; resolves with its block checksums. `onProgress` is
   * told of each line the server prints (split says each block it makes: the stall watchdog sees work).
   */
  static start(conn: Connection, rel: string, remoteRoot: string, o: StartOptions): Promise<RemoteDelta & { blocks: RemoteBlock[] }> {
    return RemoteDelta.begin(conn, rel, remoteRoot, o).ready;
  }

  /**
   * `start`, also naming the copy (a plain name beside the file) at once: the listing may see it while
   * the script runs. With `unless`, the script may stop having done nothing (`ready` then rejects).
   */
  static begin(conn: Connection, rel: string, remoteRoot: string, o: StartOptions & { unless?: Unless }): { temp: string; ready: Promise<RemoteDelta & { blocks: RemoteBlock[] }> } {
    const temp = `.kubedev-${crypto.randomBytes(6).toString('hex')}.tmp`;
    return { temp, ready: RemoteDelta.run(conn, rel, remoteRoot, temp, o) };
  }

  private static async run(conn: Connection, rel: string, remoteRoot: string, temp: string, o: StartOptions & { unless?: Unless }): Promise<RemoteDelta & { blocks: RemoteBlock[] }> {
    const { blockSize } = o;
    const remoteAbs = path.posix.join(remoteRoot, rel);
    const dir = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    const script = deltaScript(remoteRoot, dir, path.posix.basename(rel), temp, blockSize, o.writable, o.known?.id, o.kinds, o.unless);
    let ch: ClientChannel;
    try {
      ch = await conn.channel(`sh -c ${shQuote(script)}`);
    } catch (e) {
      if (!conn.alive) throw e;
      throw new DeltaFallback(rel, `no exec channel (${(e as Error).message})`); // the server's MaxSessions, say
    }
    const d = new RemoteDelta(conn, ch, rel, path.posix.join(path.posix.dirname(remoteAbs), temp), o.onProgress);
    if (!(await d.until(`${MARK} end`))) {
      const why = hasLine(d.out, `${MARK} skip`) ? 'not begun: the remote file has the local size and mtime, or is under a quarter of the size' : `the server could not copy and checksum it: ${d.err.trim().split('\n')[0] || 'no message'}`;
      throw new DeltaFallback(rel, why);
    }
    const parsed = parseBlocks(rel, d.out, blockSize, o.known);
    d.seen = parsed.seen;
    d.cached = parsed.cached;
    d.kind = parsed.kind;
    return Object.assign(d, { blocks: parsed.blocks });
  }

  /** `size mtime ino ctime` of the remote file when it was copied. */
  seen = '';
  /** The server found the file the cache describes: its blocks were not hashed again. */
  cached = false;
  /** How the blocks were hashed (the cache's way when `cached`). */
  kind: BlockHashKind = 'sha1';

  /** Resolves true once a line `line` (or `line` and more) was printed, false if the script ended first. */
  private until(line: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const off = this.conn.onDrop(reject);
      const check = (): void => {
        if (hasLine(this.out, line)) resolve(true);
        else if (this.closed) resolve(false);
        else return;
        off();
      };
      this.wake = check;
      check();
    });
  }

  /**
   * Sends `data` to the script's stdin (a `w OFFSET LENGTH` line, or bytes it announced), waiting while
   * the channel's window is full; DeltaFallback if the script has ended (it said why, or a write failed).
   */
  async send(data: Buffer | string): Promise<void> {
    if (this.closed) throw new DeltaFallback(this.rel, `the server stopped taking blocks: ${this.said() ?? (this.err.trim() || 'no message')}`);
    if (this.ch.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const off = this.conn.onDrop(reject);
      const done = (): void => {
        off();
        this.ch.off('drain', done);
        this.ch.off('close', done);
        resolve();
      };
      this.ch.once('drain', done);
      this.ch.once('close', done);
    });
  }

  /** What the script said after the checksums (`ok`, or why it stopped), if anything. */
  private said(): string | undefined {
    return this.out.split('\n').find((l) => l.startsWith(`${MARK} `) && l !== `${MARK} end`)?.slice(MARK.length + 1);
  }

  /**
   * Asks the script to set the size, check the copy against `sum`, set `mode` and `mtime` (whole
   * seconds) and rename it (and with `waitEnd`, waits for the script's end); DeltaFallback if it refused.
   * Resolves with the file's identity after the rename (`size mtime ino ctime`; '' if the server could
   * not tell).
   */
  async commit(sum: number, size: number, mode: number, mtime: number, o: { waitEnd: boolean }): Promise<string> {
    if (!this.closed) this.ch.end(`commit ${sum} ${size} ${(mode & 0o7777).toString(8)} ${mtime} .\n`);
    await this.until(`${MARK} ok`);
    const said = this.said();
    if (said !== 'ok' && !said?.startsWith('ok ')) throw new DeltaFallback(this.rel, `the result was not put in place: ${said ?? (this.err.trim() || 'the server said nothing')}`);
    // In a read-only folder (opened for this transfer only), until the script has ended: its exit removes
    // what is left of the block files. The file is in place: a drop now is no failure.
    if (o.waitEnd) await this.until('\0never').catch(() => undefined);
    return said.slice(3);
  }

  /** Gives up: the script removes the copy when its stdin ends. */
  async abort(): Promise<void> {
    try {
      this.ch.end();
    } catch {
      return; // the channel is gone: so is the script (its EXIT trap removed the copy)
    }
    await this.until('\0never').catch(() => undefined);
  }
}

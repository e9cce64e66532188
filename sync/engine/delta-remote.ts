/**
 * The server's side of a changed-blocks transfer, with stock tools only (sh, coreutils, GNU find), as
 * one `sh` per file on one exec channel (a process per step, never one per block: `split --filter`
 * forks a shell per block, 4 ms each on a loaded machine):
 *
 * 1. `cp` copies the remote file to a temporary name beside it while one `split` cuts it into blocks,
 *    each written into a named pipe (FIFO) made for it beforehand (in a private `mktemp -d` folder of
 *    /dev/shm, else of the temporary space, else beside the file), which one `xxh128sum` (or `sha1sum`
 *    where the server has no xxhash: block-hash.ts) reads in order: no block is ever written to the
 *    disk. Block files cost a write of the whole file and its removal: 0.47 against 0.31 s of CPU for
 *    200 MiB, 295 against 210 ms (measured here, medians of 10). The script prints the file's
 *    `size mtime` (find -printf), the hash tool it used and the block hashes, and reads its stdin.
 *    A pipe has one reader, so no block is also `cksum`ed: the final check is a whole-file digest (below).
 *    Neither side may wait forever for the other, and no signal is relied on for it: when `split` ends
 *    without having made every block (the file shrank or grew, a read failed, it was killed), the pipes
 *    are released (the hash tool, which would wait for a writer of the next pipe, reads its way to the
 *    end) and the file goes whole; when the hash tool fails or complains (one that could not open a
 *    pipe goes on to the next), `split` (which would wait for a reader of its next pipe) is SIGKILLed;
 *    and whatever ends the script SIGKILLs `cp` and `split` and releases
 *    the pipes before it waits for its helpers.
 *    Blocks are compared by a 128- or 160-bit hash: a block is left as it is only when its hash matches.
 * 2. The runner sends the differing ranges on stdin, `w OFFSET LENGTH` then the bytes, each written
 *    into the copy by one `dd` (exactly LENGTH bytes read; delta-write.ts), then
 *    `commit SUM SIZE MODE MTIME .`; or it closes stdin to give up (the script then removes the copy).
 * 3. On `commit`, the script sets the size, digests the whole copy (`xxh128sum`; `cksum` where it
 *    hashed blocks with SHA-1, whose whole-file pass would cost 0.55 s per 200 MiB), compares it with the
 *    local file's digest (the runner made it while it read the file for its block hashes), sets the mode
 *    and mtime, checks that the remote file is still the one it copied, and renames the copy over it:
 *    the file put in place is the local file's bytes, whatever the block hashes said (a block kept
 *    because of a hash collision or a wrong cache entry is caught here). On any failure (a write, the
 *    disk full, a mismatch) it removes the copy and says why.
 *
 * Temporary names start with `.kubedev-`: a killed run's leftovers beside the file are deleted by the
 * next pass. A script SIGKILLed outright (no trap runs) also leaves its pipes' folder (in /dev/shm or
 * the temporary space: FIFOs and split's list of them, no byte of the file); a later script removes
 * such folders once they are an hour old (beside the file, the next pass does).
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { ClientChannel } from 'ssh2';
import { CachedFile } from './block-cache';
import { BlockHashKind, HASH_HEX, HASH_ORDER, HASH_TOOLS, kindOfTool } from './block-hash';
import { remoteRootShellCheck } from '../../lib/remote-root';
import { Connection } from './transport';
import { shQuote } from './tree';
import { enterRoot, PLACE_OF_PWD } from './remote-place';

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
 * copies while `split` cuts the file into one named pipe per block, read in order by the first of
 * `kinds` the server has.
 */
export function deltaScript(root: string, dir: string, name: string, temp: string, blockSize: number, writable: boolean, known: { readonly id: string; readonly kind: BlockHashKind } | undefined, kinds: readonly BlockHashKind[] = HASH_ORDER, early?: Unless, localSize?: number, physical?: Buffer): string {
  // The file's folder entered physically and checked to be that folder of the physical root: a folder the
  // server replaced by a symlink since the listing is not worked in (the file then goes whole, by a path
  // that checks too). So is a root that leads elsewhere than where it was listed (remote-place.ts).
  // An early script (begun before the listing told the root's place) says where it entered the root.
  const at = early ? [PLACE_OF_PWD, `printf 'KUBEDEV-AT %s\\n' "$KUBEDEV_PLACE"`] : [];
  const enter =
    dir === ''
      ? [enterRoot(root, physical, 'exit 65'), ...at]
      : [
          enterRoot(root, physical, 'exit 65'),
          ...at,
          'r=$PWD',
          `cd -P -- ./${shQuote(dir)} || exit 65`,
          `[ "$(pwd -P)" = "$r"/${shQuote(dir)} ] || { echo "its folder resolves outside the root (a symlink made on the server)" >&2; exit 65; }`,
        ];
  // Started before the listing (delta-early.ts): the root is checked as the listing's preparation checks
  // it (nothing is written under a root it refuses), and the script stops having copied nothing when
  // the remote file will not go by changed blocks: its size and whole-second mtime are the local file's
  // (the plan leaves it), or it is under a quarter or over twice the local size (deltaCandidate).
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
  // deltaCandidate's bounds on the remote size `$z`: at least a quarter, at most twice the local size.
  const outside = (n: number): string => `[ $((z * 4)) -lt ${n} ] || [ "$z" -gt $((${n} * 2)) ]`;
  const skipIf = (test: string): string => `if ${test}; then printf '%s skip\n' ${MARK}; exit 0; fi`;
  const bounded = early?.size ?? localSize;
  const skip = early
    ? ['z=${s%% *} m=${s#* }; m=${m%%[. ]*}', skipIf(`[ "$z" = ${early.size} ] && [ "$m" = ${early.mtime} ] || ${outside(early.size)}`)]
    : bounded !== undefined
      ? ['z=${s%% *}', skipIf(outside(bounded))]
      : [];
  return [
    ...ahead,
    ...enter,
    `f=./${shQuote(name)} t=${temp} ok= pc= ps= ph= hs= p= d=`,
    // `rm -f` with its arguments; a folder the user closed (0555) is opened only as long as it needs.
    'gone() { rm -f "$@" 2>/dev/null && return; m=$(stat -c %a .) && chmod u+w . && { rm -f "$@"; chmod "$m" .; }; }',
    // The pipes live in `$p/a` (`$p` a private folder: see `mk` below). Releasing them is what ends a hash
    // tool or a split stopped opening one (its other end will never come), with no signal to deliver: the
    // folder is renamed, so that every later open of a pipe by its name fails, then each pipe is opened
    // and closed (read-write: that never waits on Linux), which lets an open already waiting on it return
    // (a reader then reads the end, a writer gets EPIPE). A signal could be lost on the way (dash and ash
    // subshells drop a TERM that comes before they reset the parent's traps), ignored (a TERM ignored by
    // whoever started the script is ignored by all its children), or miss a process (the hash tool whose
    // subshell was killed).
    'wake() { for x in "$p/$d/$t".[0-9]*; do [ -p "$x" ] && { :; } 2>/dev/null 3<>"$x"; done; return 0; }',
    'release() { [ -n "$p" ] && [ -d "$p/a" ] || return 0; d=a; mv -- "$p/a" "$p/z" 2>/dev/null && d=z; wake; }',
    'unpipe() { [ -z "$p" ] || { gone -r -- "$p"; p=; }; }',
    // On any exit (a failure, the runner's channel gone, a signal): cp and split, if not yet waited for,
    // are SIGKILLed (which nothing ignores; they hold nothing to lose) and waited for, so split opens no
    // pipe's name again; the pipes are released, so the hash tool ends; all are waited for (the channel
    // closes only once no process holds its output); the copy (unless put in place) and the pipes are
    // removed. Until the hash tool's subshell ends, the pipes are woken again each second: a hash tool
    // that looked a pipe up before the rename but began to wait on it only after it was woken (preempted
    // inside that one system call) would otherwise wait for good. A helper's pid is cleared once it was
    // waited for, and is `.` from just before it is started until its pid is stored: a signal between the
    // two finds it in `$!`. (Linux hands pids out in turn: one freed is not reused before pid_max others,
    // so a kill racing a helper's own end cannot reach another process.)
    `trap 'set +e; trap "" HUP INT TERM PIPE; [ "$pc" != . ] || pc=$!; [ "$ps" != . ] || ps=$!; [ "$ph" != . ] || ph=$!; [ -z "$pc$ps" ] || { kill -9 $pc $ps; wait $pc $ps; } 2>/dev/null; release; if [ -n "$d" ] && [ -n "$ph" ]; then ( while sleep 1; do wake; done ) </dev/null >/dev/null & b=$!; wait $ph; kill -9 $b; wait $b; fi 2>/dev/null; wait; [ -n "$ok" ] || gone -- "$t"; unpipe' EXIT`,
    // A signal, or a write to the runner's channel once it is gone (SIGPIPE), ends the script through that trap.
    "trap 'exit 3' HUP INT TERM PIPE",
    `no() { printf '%s %s\\n' ${MARK} "$1"; exit 3; }`,
    `for x in ${kinds.map((k) => HASH_TOOLS[k]).join(' ')}; do command -v $x >/dev/null 2>&1 && { hs=$x; break; }; done`,
    'hq=; [ "$hs" = xxh128sum ] && hq=-q',
    `[ -n "$hs" ] || { echo "none of ${kinds.map((k) => HASH_TOOLS[k]).join(', ')} is installed" >&2; exit 65; }`,
    'set -e',
    `s=$(find "$f" -maxdepth 0 -type f ${IDENTITY})`,
    '[ -n "$s" ] || { echo "not a regular file" >&2; exit 65; }',
    ...skip,
    // The copy's name is taken at once, private (umask 077: commit gives it the file's mode): a folder
    // where it cannot be made fails the script now, before any hash is printed, not after.
    'umask 077',
    'true > "$t" || { echo "no copy can be made beside the file (a read-only folder?)" >&2; exit 65; }',
    'pc=.; cp -- "$f" "$t" & pc=$!',
    // The cache's blocks stand only if the server can still check the copy their way (XXH3-128 blocks
    // are checked with xxh128sum, which it may have lost; SHA-1 ones with cksum).
    `if [ "$s" = ${shQuote(known ? known.id : '-')} ]${known?.kind === 'xxh128' ? ' && [ "$hs" = xxh128sum ]' : ''}; then`,
    `  printf '%s\\n%s\\ncached\\n%s end\\n' ${MARK} "$s" ${MARK}`,
    'else',
    `  n=$(( (\${s%% *} + ${blockSize - 1}) / ${blockSize} ))`,
    '  [ "$n" -gt 0 ] || { echo "the remote file is empty" >&2; exit 65; }',
    // The pipes in a private folder of shared memory (/dev/shm, which containers have even with a
    // read-only root), else of the temporary space, else beside the file; each place is left for the
    // next if its pipes cannot all be made. The listing never sees them, a volume that cannot hold a
    // FIFO (SMB, some FUSE) still serves the copy, and a FIFO made on a disk file system costs a journal
    // entry (1,600 of them took 0.03 to 1.4 s on ext4 here, 10 ms in /dev/shm; a FIFO's bytes never
    // reach the disk either way). `%.0f`: seq's `%g` writes 10^6 as 1e+06. After the n pipes, a folder
    // where split's block n would go: a file grown since it was measured fails split there (EISDIR)
    // instead of filling shared memory (the pod's RAM) with the rest of it as plain files.
    `  mk() { p=$(mktemp -d "$1/$t.XXXXXXXX" 2>/dev/null) || { p=; return 1; }; ( cd "$p" && mkdir a && cd a && seq -f "$t.%06.0f" 0 $((n - 1)) | xargs mkfifo -m 600 -- && mkdir -- "$(seq -f "$t.%06.0f" $n $n)" ) 2>/dev/null && return; unpipe; return 1; }`,
    '  mk /dev/shm || mk "${TMPDIR:-/tmp}" || mk . || { echo "no named pipes can be made for its blocks" >&2; exit 65; }',
    // Such folders an hour old are a SIGKILLed script's (no trap ran; a live one removes its pipes once
    // hashed): removed in passing, off the way (the trap waits for it). The trailing `/` follows a
    // temporary space that is a symlink; beside the file, the listing removes them (`.kubedev-*`).
    `  find /dev/shm/ "\${TMPDIR:-/tmp}/" -maxdepth 1 -type d -name '.kubedev-*.tmp.????????' -mmin +60 -exec rm -rf -- {} + </dev/null >/dev/null 2>&1 &`,
    `  printf '%s\\n%s\\n%s\\n' ${MARK} "$s" "$hs"`,
    `  ps=.; split --verbose -a 6 -d -b ${blockSize} -- "$f" "$p/a/$t." > "$p/v" & ps=$!`,
    // The hash tool reads the pipes in order, its lines straight to the runner. When it fails (killed,
    // or its output gone), split, which would wait for a reader of its next pipe, is SIGKILLed; so it is
    // at the hash tool's first complaint: one that could not open a pipe (ENFILE, ENOMEM) goes on to the
    // next and waits for its writer there, while split waits for a reader of the one skipped. The
    // complaints themselves (one a pipe released) are dropped.
    `  ph=.; ( cd "$p" && { seq -f "a/$t.%06.0f" 0 $((n - 1)) | xargs $hs $hq -- 2>&1 >&3 3>&- || echo; } | { read -r _ || exit 0; kill -9 $ps || :; cat; exit 1; } >/dev/null 2>&1 3>&- && exit 0; kill -9 $ps 2>/dev/null || :; exit 1 ) 3>&1 & ph=$!`,
    // split's count of blocks is read only when it ended well (its buffered list is lost if it is
    // killed); when it ended short or failed, the pipes are released: the hash tool ends.
    '  es=0; wait $ps || es=$?',
    '  ps=',
    '  if [ "$es" -ne 0 ] || [ "$(wc -l < "$p/v")" -ne "$n" ]; then',
    '    release',
    '    echo "the file changed or could not be read while it was cut into blocks" >&2',
    '    exit 65',
    '  fi',
    '  wait $ph || exit 65',
    '  ph=',
    `  printf '%s end\\n' ${MARK}`,
    '  ( unpipe ) </dev/null >/dev/null 2>&1 &',
    '  p=',
    'fi',
    // The copy is written to only once the runner has the hashes and sends its changed ranges.
    'wait $pc || { pc=; exit 65; }',
    'pc=',
    ...(writable ? [] : ['chmod u+w -- "$t"']),
    // The changed ranges: `w OFFSET LENGTH` then exactly LENGTH bytes (dd reads no further), a dd each.
    'while read -r cmd a b c d e && [ "$cmd" = w ]; do',
    '  dd of="$t" bs=65536 seek="$a" count="$b" iflag=fullblock,count_bytes oflag=seek_bytes conv=notrunc status=none || no write',
    'done',
    // `commit SUM SIZE MODE MTIME .`: anything else (the runner gave up, stdin ended) removes the copy.
    '[ "$cmd $e" = "commit ." ] || exit 3',
    // The size only when it changed (a process less; the check below covers the size either way).
    '[ "${s%% *}" = "$b" ] || truncate -s "$b" -- "$t" || no truncate',
    // The whole copy against the local file's digest: `x:HEX` (XXH3-128) or `c:CRC` (cksum, with the size).
    'case $a in x:*) set -- $(xxh128sum < "$t"); v="x:$1";; c:*) set -- $(cksum < "$t"); v="c:$1"; [ "$2" = "$b" ] || v="c:$1 $2";; *) v=;; esac',
    '[ -n "$v" ] && [ "$v" = "$a" ] || no "verify $v"',
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
 * tool's name and `hash  name.NNNNNN` per block in order.
 */
export function parseBlocks(rel: string, out: string, blockSize: number, known?: CachedFile): { seen: string; cached: boolean; kind: BlockHashKind; blocks: BlockSum[] } {
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
    if (!known || seen !== known.id || known.blockSize !== blockSize || known.sums.length !== n) throw new DeltaFallback(rel, `the server took '${seen.slice(0, 80)}' for the cached file`);
    return { seen, cached: true, kind: known.kind, blocks: known.sums.map((sum, i) => ({ sum, size: len(i) })) };
  }
  const kind = kindOfTool(got[0] ?? '');
  if (!kind) throw new DeltaFallback(rel, `unexpected hash tool line '${(got[0] ?? '').slice(0, 80)}'`);
  if (got.length !== 1 + n) throw new DeltaFallback(rel, `${got.length - 1} checksum lines for ${size} bytes in blocks of ${blockSize}`);
  const sumLine = new RegExp(`^([0-9a-f]{${HASH_HEX[kind]}}) [ *]\\S+\\.(\\d{6,})$`);
  return {
    seen,
    cached: false,
    kind,
    blocks: got.slice(1).map((line, i) => {
      const m = sumLine.exec(line);
      if (!m || Number(m[2]) !== i) throw new DeltaFallback(rel, `unexpected checksum line '${line.slice(0, 80)}'`);
      return { sum: m[1], size: len(i) };
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
  /**
   * The local file's size: the script stops having copied nothing when the remote file is under a
   * quarter or over twice it (deltaCandidate's bounds, checked on the server: a watching session's
   * index can be old, and a container may have grown the file since).
   */
  readonly localSize?: number;
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
   * told of what the server prints (the header at once, then the hash tool's lines in the pieces its
   * stdout buffer lets through: the stall watchdog sees work).
   */
  static start(conn: Connection, rel: string, remoteRoot: string, o: StartOptions): Promise<RemoteDelta & { blocks: BlockSum[] }> {
    return RemoteDelta.begin(conn, rel, remoteRoot, o).ready;
  }

  /**
   * `start`, also naming the copy (a plain name beside the file) at once: the listing may see it while
   * the script runs. With `unless`, the script may stop having done nothing (`ready` then rejects).
   */
  static begin(conn: Connection, rel: string, remoteRoot: string, o: StartOptions & { unless?: Unless }): { temp: string; ready: Promise<RemoteDelta & { blocks: BlockSum[] }> } {
    const temp = `.kubedev-${crypto.randomBytes(6).toString('hex')}.tmp`;
    return { temp, ready: RemoteDelta.run(conn, rel, remoteRoot, temp, o) };
  }

  private static async run(conn: Connection, rel: string, remoteRoot: string, temp: string, o: StartOptions & { unless?: Unless }): Promise<RemoteDelta & { blocks: BlockSum[] }> {
    const { blockSize } = o;
    const remoteAbs = path.posix.join(remoteRoot, rel);
    const dir = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    const script = deltaScript(remoteRoot, dir, path.posix.basename(rel), temp, blockSize, o.writable, o.known, o.kinds, o.unless, o.localSize, conn.listedRoots.get(remoteRoot));
    let ch: ClientChannel;
    try {
      ch = await conn.channel(`sh -c ${shQuote(script)}`);
    } catch (e) {
      if (!conn.alive) throw e;
      throw new DeltaFallback(rel, `no exec channel (${(e as Error).message})`); // the server's MaxSessions, say
    }
    const d = new RemoteDelta(conn, ch, rel, path.posix.join(path.posix.dirname(remoteAbs), temp), o.onProgress);
    if (!(await d.until(`${MARK} end`))) {
      const why = hasLine(d.out, `${MARK} skip`) ? o.unless ? 'not begun: the remote file has the local size and mtime, or is under a quarter or over twice the size' : 'not begun: the remote file is under a quarter or over twice the local size' : `the server could not copy and checksum it: ${d.err.trim().split('\n')[0] || 'no message'}`;
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

  /** Where an early script entered the root (its `KUBEDEV-AT` line: the physical root, UTF-8 decoded). */
  get place(): string | undefined {
    return this.out.split('\n').find((l) => l.startsWith('KUBEDEV-AT '))?.slice('KUBEDEV-AT '.length);
  }

  /** What the script said after the checksums (`ok`, or why it stopped), if anything. */
  private said(): string | undefined {
    return this.out.split('\n').find((l) => l.startsWith(`${MARK} `) && l !== `${MARK} end`)?.slice(MARK.length + 1);
  }

  /**
   * Asks the script to set the size, check the whole copy against `digest` (the local file's, block-hash.ts
   * wholeDigest: `x:HEX` or `c:CRC`), set `mode` and `mtime` (whole seconds) and rename it (and with
   * `waitEnd`, waits for the script's end); DeltaFallback if it refused. Resolves with the file's identity
   * after the rename (`size mtime ino ctime`; '' if the server could not tell).
   */
  async commit(digest: string, size: number, mode: number, mtime: number, o: { waitEnd: boolean }): Promise<string> {
    if (!this.closed) this.ch.end(`commit ${digest} ${size} ${(mode & 0o7777).toString(8)} ${mtime} .\n`);
    await this.until(`${MARK} ok`);
    const said = this.said();
    if (said !== 'ok' && !said?.startsWith('ok ')) throw new DeltaFallback(this.rel, `the result was not put in place: ${said ?? (this.err.trim() || 'the server said nothing')}`);
    // In a read-only folder (opened for this transfer only), until the script has ended: its exit removes
    // what is left of the pipes (made beside the file where the server has no temporary space). The file
    // is in place: a drop now is no failure.
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

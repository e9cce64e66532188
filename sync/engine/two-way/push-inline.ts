/**
 * A laptop save in the scoped listing's round trip: a compare-and-swap per small file, at the start of
 * the same shell command as the listing (before the `find` that lists: the save lands one process
 * sooner, and the listing shows what the swap left, or a container write just after it, for the
 * classification; the swap's guards it lists are no leftovers).
 *
 * For each locally changed regular file of at most INLINE_MAX bytes whose ancestor records the remote
 * side as a regular file, the client reads the bytes (then lstats again: they must be the version whose
 * sig it sends) and the server, in the file's folder entered physically and checked to be inside the
 * root (remote-guard.ts inFolderOf: a folder replaced by a symlink is never entered):
 *   1. writes the bytes into a fresh `.kubedev-*.tmp` beside the file (the shell's built-in printf,
 *      `set -C`: an existing name is never opened for writing), with the laptop's mode and whole-second mtime (what
 *      the SFTP push sets: the ancestor then records `remoteAfterPush`);
 *   2. links the guard (`.kubedev-guard-*`, as guardOverwrites does) to the file;
 *   3. one `find` checks that the guard is a regular file with exactly the ancestor's remote size, mode
 *      and mtime (to the nanosecond, within what the ancestor's number can tell: the same equality the
 *      classification uses), and that the temporary file holds what was sent;
 *   4. right before the rename, the name must still be the guard's inode and no symlink (`-ef`, `-L`:
 *      shell built-ins), then `mv -fT` (never into a folder made meanwhile).
 * Anything else (the file changed since the ancestor, is gone, is a folder, FIFO or link, the folder is
 * read-only, the disk full) removes the temporary file and the guard and reports a skip: the pass then
 * takes today's path (guardOverwrites + applyPlan) when its decision is a push. A swapped file's guard
 * goes into the pass's release (a container write in place during the swap is kept beside the file).
 *
 * Nothing is swapped in a root whose `dev:ino` is not the one recorded (the pass halts on that).
 * Processes per file: touch, ln, find, mv (chmod too when the mode has bits umask cannot give; the
 * bytes go through the built-in printf). The same find checks that the root's `dev:ino` is still the
 * one recorded (the pass halts on another).
 *
 * Where the session's shell runs the swap helper (swap-helper.ts, perl), steps 2 to 4 are its system
 * calls instead, asked for through the shell's built-in printf and read: no process per file (the
 * shell's own subshell and printf of the bytes stay). The same checks, in the same order.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnoreMatcher } from '../ignore';
import { entryFromStats, shQuote } from '../tree';
import type { Ownership } from './classify';
import { checkedParent } from './local-write';
import { bare, guardNames, Guards, inFolderOf } from './remote-guard';
import { anchorOf } from './scope';
import { INLINE_COUNT, INLINE_MAX, ListingSection } from './remote-list';
import { sameLocal, sameSig, Sig, sigOf, StateStore } from './state-store';
import { hashOf } from './content-hash';
import { helperSwapLines } from './swap-helper';

/** Raw bytes sent inside one listing at most (text goes as itself; other bytes take 4). */
const INLINE_PUSH_BYTES = 256 * 1024;
/**
 * The printf text of one pass's swaps at most when the server's shell reads its commands a byte at a
 * time (remote-shell.ts `bytewise`: bash, about 2 µs a byte): 8 KiB costs about 15 ms there; a larger
 * save goes by SFTP.
 */
export const BYTEWISE_TEXT_MAX = 8 * 1024;

/** A local file to swap in: its bytes, the local sig they are, and the remote version it may replace. */
export interface InlinePush {
  readonly rel: string;
  readonly bytes: Buffer;
  /** The local sig of `bytes` (lstat before and after the read agree). */
  readonly l: Sig;
  /** The ancestor's remote side: the swap happens only over exactly this version. */
  readonly r: Sig;
}

/** A swap that took place: the local version sent, what the server holds now, and its guard. */
export interface Swapped {
  readonly l: Sig;
  readonly r: Sig;
  /** The guard's path (relative to the root) and its stat as made (`size/mtime/mode`, releaseGuards compares). */
  readonly guard: string;
  readonly seen: string;
  /** The file's `ino/size/mtime/mode` once swapped in (what a look after it must find if nothing else wrote it). */
  readonly after: string;
  /** The content hash of the bytes sent, for the ancestor. */
  readonly h: string;
}

export interface PushHost {
  readonly localRoot: string;
  readonly ig: IgnoreMatcher;
  readonly own?: Ownership;
  readonly store: StateStore;
  /** The printf text one pass's swaps may take at most (BYTEWISE_TEXT_MAX on a bytewise shell); no cap when undefined. */
  readonly swapTextMax?: number;
}

/**
 * The files of `dirty` worth a swap: each its own anchor (every folder above it agreed as a folder on
 * both sides, no conflict there: it is listed, under itself or a folder named too), not ignored, not owned by the container, no open conflict, the
 * ancestor's remote side a regular file, the local side a regular file of at most INLINE_MAX bytes that
 * changed since the ancestor. A file that changes while it is read (or cannot be read) is left out.
 */
export function inlinePushes(h: PushHost, dirty: Iterable<string>): InlinePush[] {
  const out: InlinePush[] = [];
  let bytes = 0;
  let text = 0;
  for (const rel of dirty) {
    if (out.length >= INLINE_COUNT) break;
    if (anchorOf(h.store, rel) !== rel || h.ig.ignores(rel, false) || h.own?.remoteOwns(rel, false) || h.store.conflict(rel)) continue;
    const a = h.store.agreed(rel);
    if (a?.r.t !== 'f') continue;
    const p = readWhole(h.localRoot, rel, a.l);
    if (!p || bytes + p.bytes.length > INLINE_PUSH_BYTES) continue;
    // Only its ctime moved (a chmod to the same mode, a link, an xattr) and the bytes are the ancestor's: nothing to send.
    if (sameSig(p.l, a.l) && a.h !== undefined && hashOf([p.bytes]) === a.h) continue;
    const t = h.swapTextMax === undefined ? 0 : printfLength(p.bytes);
    if (h.swapTextMax !== undefined && text + t > h.swapTextMax) continue;
    bytes += p.bytes.length;
    text += t;
    out.push({ rel, bytes: p.bytes, l: p.l, r: a.r });
  }
  return out;
}

/** The local file's bytes and sig when it is a regular file (not through a symlink) of at most INLINE_MAX bytes that is not `agreed`. */
function readWhole(root: string, rel: string, agreed: Sig): { bytes: Buffer; l: Sig } | undefined {
  let fd: number | undefined;
  try {
    const abs = path.join(checkedParent(root, rel), path.posix.basename(rel));
    const before = fs.lstatSync(abs);
    const e = entryFromStats(before);
    if (e?.type !== 'file' || e.size > INLINE_MAX || sameLocal(sigOf(e), agreed)) return undefined;
    // O_NONBLOCK: a file replaced by a named pipe since the look must not block the runner (a sync open waits for a writer).
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    const st = fs.fstatSync(fd);
    if (st.ino !== before.ino || st.dev !== before.dev) return undefined;
    const buf = Buffer.alloc(e.size + 1);
    let n = 0;
    for (let k; n < buf.length && (k = fs.readSync(fd, buf, n, buf.length - n, n)) > 0; ) n += k;
    const after = fs.lstatSync(abs);
    const e2 = entryFromStats(after);
    // The bytes are the version whose sig is sent only when nothing moved while they were read.
    if (n !== e.size || after.ino !== before.ino || !e2 || !sameSig(sigOf(e2), sigOf(e)) || after.ctimeMs !== before.ctimeMs) return undefined;
    return { bytes: buf.subarray(0, n), l: sigOf(e) };
  } catch {
    return undefined; // unreadable, gone, a folder on the way that is a link: today's path says why
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * `find` tests for "mtime is the one `m` records": the nanoseconds whose `%T@` the listing would read
 * as exactly `m` (remote-list.ts: Number(`%T@`) * 1000) are a contiguous range; undefined when none.
 */
export function mtimeTests(m: number): string | undefined {
  const r = mtimeRange(m);
  return r && `-newermt @${r.before} ! -newermt @${r.hi}`;
}

/**
 * The nanoseconds mtimeTests matches, as `seconds.nanoseconds`: the first and last (`lo`, `hi`) and the
 * one before the first (`before`, for find's strictly-newer test); undefined when none.
 */
export function mtimeRange(m: number): { before: string; lo: string; hi: string } | undefined {
  if (!(m >= 1000) || !Number.isFinite(m)) return undefined;
  const sec = Math.floor(m / 1000);
  const est = Math.round((m - sec * 1000) * 1e6);
  // `n` nanoseconds from `sec` (any sign, across a second's edge) as find's `@seconds.nanoseconds`.
  const at = (n: number): string => {
    const s = sec + Math.floor(n / 1e9);
    return `${s}.${String(n - Math.floor(n / 1e9) * 1e9).padStart(9, '0')}`;
  };
  let lo: number | undefined;
  let hi: number | undefined;
  for (let n = est - 2000; n <= est + 2000; n++) {
    if (Number(`${at(n)}0`) * 1000 !== m) continue;
    lo ??= n;
    hi = n;
  }
  if (lo === undefined || hi === undefined) return undefined;
  return { before: at(lo - 1), lo: at(lo), hi: at(hi) };
}

/** The octal umask that creates exactly `mode`, when `mode` holds no bits beyond 0666. */
function umaskFor(mode: number): string | undefined {
  return (mode & ~0o666) === 0 ? (0o777 & ~mode).toString(8).padStart(3, '0') : undefined;
}

/**
 * `b` as the format of the shell's built-in printf (no process: each fork costs milliseconds on a busy
 * server): printable ASCII as itself, every other byte (and `'`, `\\`, `%`) as a 3-digit octal escape.
 */
export function printfBytes(b: Buffer): string {
  let out = '';
  for (const c of b) out += plain(c) ? String.fromCharCode(c) : `\\${c.toString(8).padStart(3, '0')}`;
  return `'${out}'`;
}

/** A byte printfBytes writes as itself. */
function plain(c: number): boolean {
  return c >= 0x20 && c < 0x7f && c !== 0x27 && c !== 0x5c && c !== 0x25;
}

/** The length of printfBytes(b), without making it. */
export function printfLength(b: Buffer): number {
  let n = 2;
  for (const c of b) n += plain(c) ? 1 : 4;
  return n;
}

/**
 * The shell lines swapping one file (see the file's comment); prints `P\0i\0G<seen>\nT<stat>\0` or
 * `S\0i\0\0`. `$R` is the physical root; its `dev:ino` must still be `rootId` (looked at by the same
 * find as the guard, before the rename).
 */
function swapLines(p: InlinePush, i: number, guard: string, root: string, rootId: string, helper: boolean): string | undefined {
  const when = mtimeTests(p.r.m);
  if (!when) return undefined;
  const f = bare(p.rel);
  const g = bare(guard);
  const tmpName = `.kubedev-${crypto.randomBytes(6).toString('hex')}.tmp`;
  const t = shQuote(`./${tmpName}`);
  const mask = umaskFor(p.l.p);
  const sec = Math.floor(p.l.m / 1000);
  const mode = (n: number): string => n.toString(8);
  const done = `if [ "$k" ]; then printf 'P\\0%s\\0%s\\0' ${i} "$r"; else rm -f -- ${t} ${g}; printf 'S\\0%s\\0%s\\0' ${i} "$H"; fi`;
  if (helper) {
    const range = mtimeRange(p.r.m) as { lo: string; hi: string }; // defined: mtimeTests was
    const ask = helperSwapLines({ root, rootId, rel: p.rel, guard, tmpName, sec, chmod: mask ? undefined : p.l.p & 0o7777, rs: p.r.s, rp: p.r.p, rlo: range.lo, rhi: range.hi, ls: p.l.s, lp: p.l.p });
    const body = [`k=; r=; H=; umask ${mask ?? '077'}`, `if printf -- ${printfBytes(p.bytes)} > ${t} 2>/dev/null; then`, ask, 'fi', done].join('\n');
    return inFolderOf(p.rel, body, `printf 'S\\0%s\\0\\0' ${i}`);
  }
  const check = [
    `find "$R" ${g} ${t} -maxdepth 0 \\( -type d -printf 'R%D:%i\\n' \\)`,
    `-o \\( -name ${shQuote(path.posix.basename(guard))} -type f -size ${p.r.s}c -perm ${mode(p.r.p)} ${when} -printf 'G%s/%T@/%m\\n' \\)`,
    `-o \\( -name ${shQuote(tmpName)} -type f -size ${p.l.s}c -perm ${mode(p.l.p)} -printf 'T%s/%T@/%m/%i\\n' \\) 2>/dev/null`,
  ].join(' ');
  const body = [
    `k=; r=; H=; umask ${mask ?? '077'}`,
    `if printf -- ${printfBytes(p.bytes)} > ${t} 2>/dev/null; then`,
    // `-h`, and no chmod through a symlink: a temporary file the container replaced by a link leads nowhere (the helper uses a descriptor).
    `if touch -h -d @${sec} -- ${t}${mask ? '' : ` && [ ! -L ${t} ] && chmod ${mode(p.l.p)} -- ${t}`} && ln -- ${f} ${g} 2>/dev/null; then`,
    `r=$(${check})`,
    `case $r in ${shQuote(`R${rootId}`)}"\nG"*"\nT"*) [ ! -L ${f} ] && [ ${f} -ef ${g} ] && mv -fT -- ${t} ${f} 2>/dev/null && k=1;; esac`,
    'fi',
    'fi',
    done,
  ].join('\n');
  return inFolderOf(p.rel, body, `printf 'S\\0%s\\0\\0' ${i}`);
}

/**
 * The listing section swapping `pushes` in `root` (only while its `dev:ino` is `rootId`); `swapped`
 * holds the results once the listing came back.
 */
export class PushSection implements ListingSection {
  readonly swapped = new Map<string, Swapped>();
  /** The swap helper stopped answering during this command (its swaps were skipped; the pass pushes them). */
  helperGone = false;
  private readonly guards: string[];

  /** `helper`: the session's shell runs the swap helper (swap-helper.ts); otherwise the sh path. */
  constructor(private readonly root: string, private readonly rootId: string, private readonly pushes: readonly InlinePush[], private readonly helper = false) {
    this.guards = guardNames(pushes.map((p) => p.rel));
  }

  lines(): string[] {
    const each = this.pushes.map((p, i) => swapLines(p, i, this.guards[i], this.root, this.rootId, this.helper)).filter((x): x is string => !!x);
    if (each.length === 0) return [];
    // A helper that is gone must fail the swap's printf (EPIPE), not end the command (SIGPIPE).
    return ['set -C', ...(this.helper ? ["trap '' PIPE"] : []), `if cd -P -- ${shQuote(this.root)} 2>/dev/null; then R=$PWD`, ...each, 'fi', ...(this.helper ? ['trap - PIPE'] : [])];
  }

  took(out: Buffer): void {
    const f = out.toString('utf8').split('\0');
    for (let k = 0; k + 2 < f.length; k += 3) {
      const p = this.pushes[Number(f[k + 1])];
      if (f[k] === 'S' && f[k + 2] === 'gone') this.helperGone = true;
      if (f[k] !== 'P' || !p) continue;
      // The mtime sent may be before 1970 (`%T@` is then negative): a swap missed here leaves its guard unreleased.
      // `find`'s lines (the sh path) or the helper's one line.
      const m = /^R[\d:]+[\n ]G(\d+\/-?[\d.]+\/[0-7]+)[\n ]T(\d+)\/(-?[\d.]+)\/([0-7]+)\/(\d+)\n?$/.exec(f[k + 2]);
      if (!m) continue;
      const r: Sig = { t: 'f', s: Number(m[2]), m: Number(m[3]) * 1000, p: parseInt(m[4], 8) };
      // The temporary file's inode is the file's once renamed: `ino/size/mtime/mode` as releaseGuards prints it.
      this.swapped.set(p.rel, { l: p.l, r, guard: this.guards[Number(f[k + 1])], seen: m[1], after: `${m[5]}/${m[2]}/${m[3]}/${m[4]}`, h: hashOf([p.bytes]) });
    }
  }

  /** The swapped files' guards, for releaseGuards. */
  guarded(): Guards {
    const held = new Map<string, string>();
    const seen = new Map<string, string>();
    const after = new Map<string, string>();
    for (const [rel, s] of this.swapped) {
      held.set(rel, s.guard);
      seen.set(rel, s.seen);
      after.set(rel, s.after);
    }
    return { moved: new Set(), held, seen, unguarded: new Map(), after };
  }
}

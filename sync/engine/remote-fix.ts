/**
 * Deletes and mode changes on the server that never act outside the remote root, even when the server
 * (the container) replaced a folder on the way by a symlink since the listing: `rm -rf root/a/b` with
 * `root/a -> /outside` would remove `/outside/b`.
 *
 * One `perl` process (perl-base is Essential in Debian and Ubuntu) reads NUL-ended records on stdin:
 *   R<rel>           remove rel and everything below it (`rm -rf`; read-only folders below are opened)
 *   F<rel>           remove rel if it is not a folder (`rm -f`; a folder is left: something new is there)
 *   D<rel>           remove rel if it is an empty folder (`rmdir`; a folder with something in it is left)
 *   C<mode>\t<rel>   set rel's mode (never through a symlink: a link is left)
 * Each record's folder is reached by WALK (below; the mover in apply-moves.ts uses it too: from the
 * physical root one component at a time, lstat a real folder, chdir, same device and inode), and the
 * record acts on the bare name there. A folder being removed is entered the same way, emptied, left by
 * '..' (checked to be the folder it came from) and removed: no symlink is ever followed, at any depth.
 * Consecutive records in one folder share the walk (a branch switch's 2,000 deletes: one process).
 * Answers: `D<rel>` (its folder is no longer a real folder inside the root, or a folder changed while
 * it was being removed: nothing was done through it), `E<errno>\t<message>\t<rel>` (a removal failed:
 * then the exit code is 1; every other record was still done).
 *
 * Without perl, a shell script of the same records: per folder, `cd -P` to it and compare the physical
 * path reached with the one asked for (builtins), then one `rm` (or `chmod`) of bare names for the
 * folder's records. The folder entered is the working folder of that `rm`, so a change after the check
 * cannot lead it out; only a symlink swapped in below a folder being removed in the same microseconds
 * could (rm -rf itself does not follow symlinks inside a tree). A refused `F` is an `E` record as with
 * perl; a refused `R` ends the script with rm's message.
 */
import { ApplyContext, chunked, OWNER_RWX, parentOf, remoteFailure } from './apply-common';
import { Plan, PlanItem } from './plan';
import { enterRoot } from './remote-place';
import { deleteByHelper, OutsideRootError } from './remote-helper';
import { Connection } from './transport';
import { shQuote } from './tree';

export type FixOp = { readonly k: 'R' | 'F' | 'D'; readonly rel: string } | { readonly k: 'C'; readonly rel: string; readonly mode: number };

/**
 * Perl: `walk($d)` enters the folder `$d` (relative to the physical root `$R`, whose stat is `@root`) one
 * component at a time: lstat (a real folder, not a symlink), chdir, and the folder entered must be the
 * one lstat saw (device and inode). False when it is not a real folder inside the root (a symlink, a
 * file, gone). No single quote in it: it goes inside one.
 */
export const WALK = `our $gone = 0;
sub walk {
  $gone = 0;
  my @h = (chdir($R) ? stat(".") : ());
  return 0 unless @h && $h[0] == $root[0] && $h[1] == $root[1];
  for my $c (split(/\\//, $_[0])) {
    my @l = lstat $c;
    $gone = 1, return 0 if (!@l && $! + 0 == 2) || (@l && !-d _ && !-l _);
    return 0 if !@l || !-d _ || !chdir($c);
    @h = stat ".";
    return 0 if !@h || $h[0] != $l[0] || $h[1] != $l[1];
  }
  return 1;
}`;

/** The fixer's exit code when the server has no perl: nothing was done. */
const NO_PERL = 91;

/** The fixer (no single quote in it: it goes inside one). Argument: the physical root. */
const FIXER = `use strict;
my ($R) = @ARGV; $/ = "\\0";
my @root = stat($R) or exit 3;
${WALK}
my ($why, $no, $hard) = ("", 0, 0);
sub fail { ($why, $no) = ("$!", $! + 0); $hard = 1 unless $!{ENOTEMPTY} || $!{EEXIST}; return 0 }
sub same { my ($x, $y) = @_; return @$x && @$y && $$x[0] == $$y[0] && $$x[1] == $$y[1] }
sub zap {
  my ($n, $p) = @_;
  my @l = lstat $n;
  return $! + 0 == 2 || fail() unless @l;
  return unlink($n) || $! + 0 == 2 || fail() unless -d _;
  return 1 if rmdir($n);
  chmod(($l[2] & 07777) | 0700, $n) unless $l[2] & 0100;
  return fail() unless chdir($n);
  my @h = stat ".";
  die "moved\\n" unless same(\\@h, \\@l);
  chmod(($l[2] & 07777) | 0700, ".") if ($l[2] & 0700) != 0700;
  my $ok = opendir(my $dh, ".") || fail();
  if ($ok) { for (grep { $_ ne "." && $_ ne ".." } readdir($dh)) { $ok = zap($_, \\@h) && $ok } closedir($dh) }
  my @up = (chdir("..") ? stat(".") : ());
  die "moved\\n" unless same(\\@up, $p);
  return $ok && (rmdir($n) || fail());
}
my ($at, @here, $bad);
while (my $r = <STDIN>) {
  chop $r; my $k = substr($r, 0, 1, ""); my $m = 0;
  ($m, $r) = split(/\\t/, $r, 2) if $k eq "C";
  my $i = rindex($r, "/"); my $d = $i < 0 ? "" : substr($r, 0, $i); my $n = $r eq "" ? "." : substr($r, $i + 1);
  if (!defined($at) || $at ne $d) { $at = walk($d) ? $d : undef; @here = stat "." }
  next if !defined($at) && $gone;
  if (!defined($at) || $n eq "" || $n eq ".." || ($n eq "." && $k ne "C")) { print "D$r\\0"; next }
  ($why, $no, $hard) = ("", 0, 0);
  my $ok = eval {
    if ($k eq "R") {
      my ($z, $t) = (0, 0);
      ($why, $no, $hard) = ("", 0, 0) while !($z = zap($n, \\@here)) && !$hard && ++$t < 3;
      $z || !$hard && do { print "B$r\\0"; 1 };
    }
    elsif ($k eq "F") { my @l = lstat $n; !@l || -d _ || unlink($n) || $! + 0 == 2 || fail() }
    elsif ($k eq "D") { rmdir($n); 1 }
    else { my @l = lstat $n; !@l || -l _ || chmod(oct($m), $n) || fail() }
  };
  if (!defined $ok) { $at = undef; print "D$r\\0" } elsif (!$ok) { $bad = 1; print "E$no\\t$why\\t$r\\0" }
}
exit($bad ? 1 : 0);`;

/** The records of `ops` for the fixer's stdin. */
function fixInput(ops: readonly FixOp[]): Buffer {
  return Buffer.from(ops.map((o) => (o.k === 'C' ? `C${o.mode.toString(8)}\t${o.rel}\0` : `${o.k}${o.rel}\0`)).join(''));
}

/** The shell fallback (no perl): `x KIND FOLDER [MODE] NAME...` per run of records of one kind, folder (and mode). */
export function fixScript(ops: readonly FixOp[], tolerant: boolean): string {
  const lines = [
    'R=$(pwd -P)',
    // A folder on the way that is missing (or a file) holds nothing to remove or change: the records are done.
    'gone() { g=$R; o=$IFS; IFS=/; set -f; set -- $1; IFS=$o; set +f; for c in "$@"; do g=$g/$c; [ -L "$g" ] && return 1; [ -d "$g" ] || return 0; done; return 1; }',
    'x() {',
    '  k=$1 d=$2; shift 2',
    '  [ "$k" = C ] && { m=$1; shift; }',
    `  cd -P -- "$R/$d" 2>/dev/null && [ "$PWD" = "$R\${d:+/}$d" ] || { gone "$d" || for p in "$@"; do printf 'D%s\\0' "$d\${d:+/}\${p#./}"; done; return 0; }`,
    '  case $k in',
    '  R) rm -rf -- "$@" 2>/dev/null || for p in "$@"; do',
    '    t=0; until rm -rf -- "$p" 2>/dev/null; do',
    '      t=$((t + 1)); [ -L "$p" ] || chmod -R u+rwx -- "$p" 2>/dev/null || :',
    '      [ $t -lt 3 ] && continue',
    '      e=$(LC_ALL=C rm -rf -- "$p" 2>&1) && break',
    // Written into by the server all along while it was removed, nothing else wrong: left, reported.
    `      printf '%s\\n' "$e" | grep -v 'Directory not empty' | grep -q . || { printf 'B%s\\0' "$d\${d:+/}\${p#./}"; break; }`,
    `      printf '%s\\n' "$e" >&2; return 1`,
    '    done',
    '  done ;;',
    `  F) for p in "$@"; do [ -d "$p" ] && [ ! -L "$p" ] || rm -f -- "$p" 2>/dev/null || { e=$(LC_ALL=C rm -f -- "$p" 2>&1) || printf 'E1\\t%s\\t%s\\0' "\${e##*: }" "$d\${d:+/}\${p#./}"; }; done ;;`,
    '  D) rmdir -- "$@" 2>/dev/null || : ;;',
    '  C) for p in "$@"; do [ -L "$p" ] || [ ! -e "$p" ] || chmod "$m" -- "$p"; done ;;',
    '  esac',
    '}',
  ];
  if (!tolerant) lines.unshift('set -e');
  const tail = tolerant ? ' 2>/dev/null || true' : '';
  for (let i = 0; i < ops.length; ) {
    const o = ops[i];
    const d = o.rel === '' ? '' : parentOf(o.rel);
    const mode = o.k === 'C' ? ` ${o.mode.toString(8)}` : '';
    const names: string[] = [];
    for (; i < ops.length; i++) {
      const p = ops[i];
      if (p.k !== o.k || (p.rel === '' ? '' : parentOf(p.rel)) !== d || (p.k === 'C' && o.k === 'C' && p.mode !== o.mode)) break;
      names.push(shQuote(p.rel === '' ? '.' : `./${p.rel.slice(p.rel.lastIndexOf('/') + 1)}`));
    }
    lines.push(...chunked(`x ${o.k} ${shQuote(d)}${mode}`, names, tail));
  }
  return `${lines.join('\n')}\n`;
}

export interface FixOptions {
  /** What the user is told failed ("deleting"). */
  readonly what: string;
  readonly signal?: AbortSignal;
  /** Failures are ignored (mode changes that restore a folder's mode after a batch). */
  readonly tolerant?: boolean;
  /** Told of each folder left because the server kept writing into it (its remote copy stays): not a failure. */
  readonly busy?: (rel: string) => void;
}

export interface FixReport {
  /** Records whose folder is no longer a real folder inside the root (nothing was done through it). */
  readonly denied: string[];
  /** Records that failed: [rel, message]. */
  readonly failed: Array<[string, string]>;
  /** Folders to remove that the server kept writing into while they were removed (three tries): left. */
  readonly busy: string[];
  readonly code: number | null;
  readonly stderr: string;
}

/** Runs `ops` in the remote root, in order (callers put the records of one folder together). */
export async function runFix(conn: Connection, remoteRoot: string, ops: readonly FixOp[], o: FixOptions): Promise<FixReport> {
  const rep: FixReport = { denied: [], failed: [], busy: [], code: 0, stderr: '' };
  if (ops.length === 0) return rep;
  const enter = enterRoot(remoteRoot, conn.listedRoots.get(remoteRoot), 'exit 3');
  const command = [enter, `command -v perl >/dev/null 2>&1 || exit ${NO_PERL}`, `exec perl -e '${FIXER}' "$PWD"`].join('\n');
  let r = await conn.exec(command, fixInput(ops), { signal: o.signal });
  if (r.code === NO_PERL) r = await conn.exec('sh -s', `${enter}\n${fixScript(ops, o.tolerant === true)}`, { signal: o.signal });
  for (const rec of r.stdout.toString('utf8').split('\0')) {
    if (rec.startsWith('D')) rep.denied.push(rec.slice(1));
    else if (rec.startsWith('B')) rep.busy.push(rec.slice(1));
    else if (rec.startsWith('E')) {
      const [, msg, ...rel] = rec.slice(1).split('\t');
      rep.failed.push([rel.join('\t'), msg]);
    }
  }
  return { ...rep, code: r.code, stderr: r.stderr };
}

/**
 * runFix, then: OutsideRootError when a record's folder is no longer a real folder inside the root
 * (nothing was done through it), a RemoteError naming the paths when a removal or mode change failed
 * (neither with `tolerant`).
 */
export async function remoteFix(conn: Connection, remoteRoot: string, ops: readonly FixOp[], o: FixOptions): Promise<void> {
  const rep = await runFix(conn, remoteRoot, ops, o);
  for (const rel of rep.busy) o.busy?.(rel);
  if (o.tolerant) return;
  if (rep.denied.length > 0) throw new OutsideRootError(rep.denied[0], remoteRoot);
  if (rep.code !== 0 || rep.failed.length > 0) throw remoteFailure(o.what, remoteRoot, rep.code ?? 1, [rep.stderr, ...rep.failed.map(([rel, msg]) => `'${rel}': ${msg}`)].join('\n'));
}

/** The warning for a remote folder that could not be removed because the server kept writing into it. */
export function busyWarning(rel: string): string {
  return `remote folder '${rel}' was not removed: something on the server kept writing into it while it was removed (three tries); what is in it stays, and the next full pass removes it again. Stop what writes there in the container, or add it to .kubedevignore`;
}

/** Records that remove `deletes` (top-most paths), those of one folder together (one walk each). */
export function removeOps(deletes: readonly string[]): FixOp[] {
  return [...deletes].sort((a, b) => (parentOf(a) < parentOf(b) ? -1 : parentOf(a) > parentOf(b) ? 1 : 0)).map((rel) => ({ k: 'R' as const, rel }));
}

/** Records that set the modes of `items`, deepest first (a folder's search bit may be taken away last) or shallowest first. */
export function chmodOps(items: readonly PlanItem[], order: 'deepest' | 'shallowest' = 'deepest'): FixOp[] {
  const depth = (rel: string): number => (rel === '' ? 0 : rel.split('/').length);
  const sign = order === 'deepest' ? -1 : 1;
  const byFolder = (a: PlanItem, b: PlanItem): number => sign * (depth(a.rel) - depth(b.rel)) || (parentOf(a.rel) < parentOf(b.rel) ? -1 : parentOf(a.rel) > parentOf(b.rel) ? 1 : 0);
  return [...items].sort(byFolder).map((c) => ({ k: 'C' as const, rel: c.rel, mode: c.entry.mode }));
}

/** Deletes remote paths (top-most only), read-only parents opened. */
export async function remoteDelete(ctx: ApplyContext, deletes: readonly string[]): Promise<void> {
  if (deletes.length === 0) return;
  await withWritableParents(ctx, { deletes: [...deletes], dirs: [], files: [], links: [], chmods: [] }, () => deleteNow(ctx, deletes));
}

/** The deletes alone (inside a withWritableParents of the caller's): by the remote helper when it is used, else the fixer. */
export async function deleteNow(ctx: ApplyContext, deletes: readonly string[]): Promise<void> {
  if (await deleteByHelper(ctx, deletes)) return;
  if (deletes.length > 0) ctx.onStep?.('deleting');
  await remoteFix(ctx.conn, ctx.remoteRoot, removeOps(deletes), { what: 'deleting', signal: ctx.signal, busy: ctx.onBusy });
}

/**
 * Existing remote folders the plan writes into (creates, replaces or deletes a child of) whose mode lacks
 * u+rwx, and plan folders whose final mode lacks it: opened before the batch, given their mode after.
 */
export function foldersToOpen(ctx: ApplyContext, plan: Plan): { open: PlanItem[]; final: PlanItem[] } {
  const open = new Map<string, PlanItem>();
  const final = new Map<string, PlanItem>();
  const looked = new Set<string>(); // each folder is looked at once (a 10,000-file plan shares few parents)
  const consider = (rel: string): void => {
    for (let p = parentOf(rel); p !== '' && !looked.has(p); p = parentOf(p)) {
      looked.add(p);
      const e = ctx.remote.get(p);
      if (e?.type !== 'dir' || (e.mode & OWNER_RWX) === OWNER_RWX) continue;
      open.set(p, { rel: p, entry: { ...e, mode: e.mode | OWNER_RWX } });
      final.set(p, { rel: p, entry: e });
    }
  };
  for (const d of plan.deletes) consider(d);
  for (const list of [plan.dirs, plan.files, plan.links, plan.chmods]) for (const i of list) consider(i.rel);
  // The plan's own folders and folder mode changes end with their final mode (after their contents).
  for (const d of plan.dirs) if ((d.entry.mode & OWNER_RWX) !== OWNER_RWX) final.set(d.rel, d);
  for (const c of plan.chmods) if (c.entry.type === 'dir' && (c.entry.mode & OWNER_RWX) !== OWNER_RWX) final.set(c.rel, c);
  return { open: [...open.values()], final: [...final.values()] };
}

/** Runs `fn` with read-only remote folders of the plan opened, then gives every folder its final mode. */
export async function withWritableParents<T>(ctx: ApplyContext, plan: Plan, fn: () => Promise<T>): Promise<T> {
  const { open, final } = foldersToOpen(ctx, plan);
  if (open.length > 0) ctx.onStep?.('opening read-only folders');
  await remoteFix(ctx.conn, ctx.remoteRoot, chmodOps(open, 'shallowest'), { what: 'opening read-only folders', signal: ctx.signal, tolerant: true });
  try {
    return await fn();
  } finally {
    if (final.length > 0 && ctx.conn.alive) {
      ctx.onStep?.('setting folder modes');
      await remoteFix(ctx.conn, ctx.remoteRoot, chmodOps(final), { what: 'setting folder modes', signal: ctx.signal, tolerant: true }).catch(() => undefined);
    }
  }
}

/**
 * The swap helper: one perl process per remote shell (remote-shell.ts) that does a laptop save's
 * check-and-rename (push-inline.ts) with system calls instead of processes. The sh path forks `touch`,
 * `ln`, `find` and `mv` per save: about 16 ms of process starts on a loaded server, most of a save's
 * time. `perl` is in Debian's `perl-base`, which is Essential (every Debian or Ubuntu image has it,
 * the bookworm-slim sidecar too); only its core is used (POSIX for the machine's name), nothing from
 * the full `perl` package. A server without it, or where the helper fails to start, keeps the sh path.
 *
 * Started once, by the session's shell itself (not a command's subshell), on two FIFOs made in a
 * private `mktemp -d` folder and removed as soon as both ends are open: the shell keeps fd 8 (requests)
 * and fd 9 (answers), and every command's subshell inherits them. The FIFOs are opened by the shell's
 * redirections before perl runs, so a perl that dies at once (or never loads) gives the shell an
 * end-of-file, never a wait. Perl ends when the shell does (the end of its requests' FIFO); a command
 * that finds it gone gets EPIPE (SIGPIPE is ignored in the swap's subshell) or an end-of-file, reports
 * it, and the session goes back to the sh path.
 *
 * A request is one line, names in hex (any byte but `/` and NUL can be in a name); each carries a
 * fresh id that its answer repeats, so an answer is never taken for another's. Two requests per save,
 * in the shell's swap lines (`C`, then `M`), so a container write between the check and the rename can
 * be placed there by the tests as on the sh path:
 *   - `C`: enter the file's folder (chdir to the root, whose `dev:ino` must be the one recorded, then
 *     each folder on the way lstat'ed as a folder and checked to be the one entered: a folder replaced
 *     by a symlink is never entered), set the temporary file's mode and whole-second mtime through a
 *     descriptor opened without following a link (the sh path can only look for a link just before
 *     its `chmod`), link
 *     the guard, then statx the guard (a regular file with the ancestor's remote size, mode and mtime)
 *     and the temporary file (the inode whose mode was set, the size and mode sent). The answer is what
 *     `find` would print for both.
 *   - `M`: in the same folder (entered again the same way), the name must not be a symlink and must be
 *     the guard's inode; then rename.
 * And one per swapped file's guard release (remote-guard.ts releaseGuards), `L`: the look mark made,
 * guard and file looked at, a guard written since kept as the conflict-container copy; the answer comes
 * before guard and mark are removed, and a second line once they are (helperReleaseLines).
 *
 * Mtimes. Perl's own `lstat` gives whole seconds, and Time::HiRes is not in perl-base: the nanoseconds
 * come from the `statx` system call (Linux 4.11+; its record has one layout on every architecture; the
 * call's number is known here for x86_64 and aarch64, and a start-up check compares its answer with
 * perl's lstat before the helper says it is ready). The guard's `seconds.nanoseconds` must lie within
 * the range the sh path's `find` tests accept (push-inline.ts mtimeRange), compared as integers: the
 * same versions pass.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { shQuote } from '../tree';

/** The helper itself (perl, core modules only). Its first line of output says `ready`, or `no`. */
const PERL = String.raw`# kubedev swap helper
use strict; use warnings; use POSIX (); use Fcntl qw(O_RDONLY O_WRONLY O_CREAT O_NOFOLLOW O_NONBLOCK);
$| = 1;
my %NR = (x86_64 => 332, aarch64 => 291);
my $NR = $NR{(POSIX::uname())[4]};
sub sx {
  my ($p) = @_; my $b = "\0" x 256;
  return undef unless defined $NR && syscall($NR, -100, $p, 0x100, 0x7ff, $b) == 0;
  return undef unless (unpack("L<", $b) & 0x343) == 0x343;
  return { mode => unpack("S<", substr($b, 28, 2)), ino => unpack("Q<", substr($b, 32, 8)), size => unpack("Q<", substr($b, 40, 8)), s => unpack("q<", substr($b, 112, 8)), n => unpack("L<", substr($b, 120, 4)) };
}
sub tm { sprintf "%d.%09d0", $_[0]{s}, $_[0]{n} }
sub perm { $_[0]{mode} & 07777 }
sub reg { ($_[0]{mode} & 0170000) == 0100000 }
sub un { pack "H*", $_[0] }
sub ns { my ($s, $n) = split /[.]/, $_[0]; ($s, $n) }
sub within {
  my ($x, $lo, $hi) = @_; my ($ls, $ln) = ns($lo); my ($hs, $hn) = ns($hi);
  return ($x->{s} > $ls || $x->{s} == $ls && $x->{n} >= $ln) && ($x->{s} < $hs || $x->{s} == $hs && $x->{n} <= $hn);
}
sub enter {
  my ($root, $id, $dir) = @_;
  chdir un($root) or return 0;
  my @st = lstat "."; return 0 unless @st && "$st[0]:$st[1]" eq $id;
  for my $c (grep { length } split m{/}, un($dir)) {
    return 0 if $c eq "." || $c eq "..";
    my @a = lstat $c; return 0 unless @a && ($a[2] & 0170000) == 0040000;
    chdir $c or return 0;
    my @b = lstat "."; return 0 unless @b && $b[0] == $a[0] && $b[1] == $a[1];
  }
  return 1;
}
sub check {
  my ($root, $id, $dir, $f, $g, $t, $sec, $chmod, $rs, $rp, $lo, $hi, $ls, $lp) = @_;
  return "S" unless enter($root, $id, $dir);
  ($f, $g, $t) = map { un($_) } $f, $g, $t;
  my (@tf, $fh);
  if (sysopen($fh, $t, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) || sysopen($fh, $t, O_WRONLY | O_NOFOLLOW | O_NONBLOCK)) {
    if ($chmod ne "-") { chmod $chmod, $fh or return "S" }
    utime $sec, $sec, $fh or return "S";
    @tf = stat $fh; close $fh;
  } else {
    # A mode without the owner's read and write bits (0000, 0044): by name, once seen not to be a link.
    @tf = lstat $t; return "S" unless @tf && ($tf[2] & 0170000) == 0100000;
    if ($chmod ne "-") { chmod $chmod, $t or return "S" }
    utime $sec, $sec, $t or return "S";
  }
  return "S" unless @tf;
  link $f, $g or return "S";
  my $G = sx($g);
  return "S" unless $G && reg($G) && $G->{size} == $rs && perm($G) == $rp && within($G, $lo, $hi);
  my $T = sx($t);
  return "S" unless $T && reg($T) && $T->{ino} == $tf[1] && $T->{size} == $ls && perm($T) == $lp;
  return sprintf "R%s G%d/%s/%o T%d/%s/%o/%d", $id, $G->{size}, tm($G), perm($G), $T->{size}, tm($T), perm($T), $T->{ino};
}
sub release {
  my ($req, $root, $id, $dir, $g, $f, $mark, $seen, $copy, $i) = @_;
  return "x -" unless enter($root, $id, $dir);
  ($g, $f, $mark, $seen, $copy) = map { un($_) } $g, $f, $mark, $seen, $copy;
  my $mh;
  close $mh if sysopen($mh, $mark, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0666);
  my $G = sx($g); my $F = sx($f);
  my $now = $G ? sprintf("%d/%s/%o", $G->{size}, tm($G), perm($G)) : "";
  my $file = $F && reg($F) ? sprintf("%d/%d/%s/%o", $F->{ino}, $F->{size}, tm($F), perm($F)) : "gone";
  my $kept = "-";
  if ($now ne "" && $now ne $seen) { $kept = link($g, $copy) ? "kept" : link($g, "$copy-$i") ? "kept-" : "-" }
  # What was found and kept is said before the guard goes (a helper ended after this line lost no
  # report); a second line once guard and mark are gone.
  print "$req $file $kept\n";
  unlink $g, $mark;
  return "done";
}
sub move {
  my ($root, $id, $dir, $f, $g, $t) = @_;
  return "S" unless enter($root, $id, $dir);
  ($f, $g, $t) = map { un($_) } $f, $g, $t;
  my @a = lstat $f; return "S" unless @a && ($a[2] & 0170000) != 0120000;
  my @b = lstat $g; return "S" unless @b && $a[0] == $b[0] && $a[1] == $b[1];
  rename $t, $f or return "S";
  return "ok";
}
{
  my @l = lstat "."; my $x = sx(".");
  unless ($x && @l && $x->{ino} == $l[1] && $x->{s} == $l[9] && $x->{mode} == ($l[2] & 0xffff)) { print "no\n"; exit 0 }
}
print "ready\n";
while (defined(my $l = <STDIN>)) {
  chomp $l;
  my ($op, $id, @a) = split / /, $l, -1;
  my $r = eval { $op eq "C" ? check(@a) : $op eq "M" ? move(@a) : $op eq "L" ? release($id, @a) : "S" };
  print "$id ", (defined $r ? $r : "S"), "\n";
}
`;

/**
 * The lines the session's shell runs once (in itself, not a subshell) to start the helper; they print
 * `ready` when it is. Every process there reads /dev/null: the shell's stdin is the channel.
 */
export function helperStart(): string {
  return [
    'KH=',
    'if command -v perl >/dev/null 2>&1 </dev/null && KD=$(mktemp -d 2>/dev/null </dev/null) && mkfifo -m 600 "$KD/i" "$KD/o" 2>/dev/null </dev/null; then',
    `perl -e ${shQuote(PERL)} <"$KD/i" >"$KD/o" 2>/dev/null & KP=$!`,
    // A perl that never answers (a wrapper waiting on something) is ended: the shell's read must end.
    '{ sleep 10; kill $KP; } </dev/null >/dev/null 2>&1 & KW=$!',
    'command exec 8>"$KD/i" 9<"$KD/o" && { read -r KH <&9 || KH=; }',
    'kill $KW 2>/dev/null',
    'rm -rf "$KD" </dev/null',
    '[ "$KH" = ready ] || { command exec 8>&- 9<&-; } 2>/dev/null',
    'fi',
    'printf \'%s\' "$KH"',
  ].join('\n');
}

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

/** What a helper swap needs from push-inline.ts's swap (all known before the command is sent). */
export interface HelperSwap {
  readonly root: string;
  readonly rootId: string;
  readonly rel: string;
  readonly guard: string;
  readonly tmpName: string;
  /** The whole-second mtime and mode to give the temporary file (the mode: only when umask cannot give it). */
  readonly sec: number;
  readonly chmod?: number;
  /** The ancestor's remote size, permission bits, and mtime: the first and last nanosecond the listing reads as it (push-inline.ts mtimeRange). */
  readonly rs: number;
  readonly rp: number;
  readonly rlo: string;
  readonly rhi: string;
  /** The size and permission bits of the bytes sent. */
  readonly ls: number;
  readonly lp: number;
}

/**
 * The shell lines (inside the file's folder, after the bytes were written to `./<tmpName>`) asking the
 * helper to check and rename: `k` is set when the file was swapped and `r` holds the `R.. G.. T..`
 * answer; `H=gone` when the helper did not answer (its FIFO broken or ended).
 */
export function helperSwapLines(s: HelperSwap): string {
  const id = crypto.randomBytes(4).toString('hex');
  const where = [hex(s.root), s.rootId, hex(path.posix.dirname(s.rel) === '.' ? '' : path.posix.dirname(s.rel)), hex(path.posix.basename(s.rel)), hex(path.posix.basename(s.guard)), hex(s.tmpName)];
  const c = ['C', id, ...where, String(s.sec), s.chmod === undefined ? '-' : String(s.chmod), String(s.rs), String(s.rp & 0o7777), s.rlo, s.rhi, String(s.ls), String(s.lp & 0o7777)].join(' ');
  const m = ['M', id, ...where].join(' ');
  const [t, f, g] = [s.tmpName, path.posix.basename(s.rel), path.posix.basename(s.guard)].map((n) => shQuote(`./${n}`));
  return [
    `if printf '%s\\n' ${shQuote(c)} >&8 && read -r n r <&9 && [ "$n" = ${id} ]; then`,
    // No answer to M: the helper ended after the rename or before it. Renamed (its file gone, the name no
    // longer the guard's inode) counts as swapped: the guard stays for the release to look at.
    `case $r in R*) [ -n "$r" ] && { printf '%s\\n' ${shQuote(m)} >&8 && read -r n m <&9 && [ "$n" = ${id} ] || { H=gone; m=; [ ! -e ${t} ] && [ -f ${f} ] && [ ! -L ${f} ] && ! [ ${f} -ef ${g} ] && m=ok; }; } && [ "$m" = ok ] && k=1;; esac`,
    'else H=gone; fi',
  ].join('\n');
}

/** What the release of one swapped file's guard needs (remote-guard.ts releaseGuards). */
export interface HelperRelease {
  readonly root: string;
  readonly rootId: string;
  readonly rel: string;
  readonly guard: string;
  readonly mark: string;
  /** The guard's stat when it was made (`size/mtime/mode`). */
  readonly seen: string;
  /** The conflict-container copy's name (a plain name in the file's folder); `<copy>-<i>` when taken. */
  readonly copy: string;
  readonly i: number;
}

/**
 * The helper's release of a swapped file's guard, in its folder: it makes the look mark, looks at the
 * guard and the file, keeps a guard written since it was made as the copy, removes guard and mark; the
 * shell prints what releaseGuards parses. `otherwise`: the sh lines, run when the helper does not answer.
 */
export function helperReleaseLines(s: HelperRelease, otherwise: string): string {
  const id = crypto.randomBytes(4).toString('hex');
  const dir = path.posix.dirname(s.rel);
  const l = ['L', id, hex(s.root), s.rootId, hex(dir === '.' ? '' : dir), hex(path.posix.basename(s.guard)), hex(path.posix.basename(s.rel)), hex(path.posix.basename(s.mark)), hex(s.seen), hex(s.copy), String(s.i)].join(' ');
  const [g, m] = [s.guard, s.mark].map((n) => shQuote(`./${path.posix.basename(n)}`));
  return [
    // Only an answer that is a look (a stat, or gone) is taken; anything else runs the sh lines.
    `if printf '%s\\n' ${shQuote(l)} >&8 && read -r n f k <&9 && [ "$n" = ${id} ] && case $f in gone|[0-9]*/*) :;; *) false;; esac; then`,
    `printf 'file ${s.i} %s\\n' "$f"`,
    `case $k in kept) echo 'kept ${s.i}';; kept-) echo 'kept-${s.i} ${s.i}';; esac`,
    // Ended before it removed them: they go here (the copy, if any, is made and reported already).
    `{ read -r n d <&9 && [ "$n" = ${id} ] && [ "$d" = done ]; } || rm -f -- ${g} ${m}`,
    'else',
    otherwise,
    'fi',
  ].join('\n');
}

/**
 * The remote helper's program: POSIX sh plus GNU coreutils (`head`, `touch`, `chmod`, `mv`, `rm`), all
 * in a stock Debian base. It runs on one exec channel for the whole connection and reads requests from
 * stdin; it answers each with one line `<id> <word>` on stdout.
 *
 * Framing (remote-helper.ts writes it; nothing in it is ever evaluated by the shell):
 *   K<key> p <id>                                         a no-op (answers `<id> ok`): measures the round trip
 *   K<key> w <id> <size> <umask> <mode|-> <mtime> <len>   then the path (<len> bytes, one line, no newline in it),
 *                                                         then exactly <size> bytes, then
 *   K<key> c|a <id>                                       commit (rename into place) or abort (remove)
 *   K<key> r <id> <len>                                   then the path: `rm -rf` it (read-only folders opened)
 *   K<key> d <id> <mode> <len>                            then the path: `mkdir -m <mode>` it
 * The first line the helper reads is `<key> <tmp>`, both random for each helper (sent on stdin, so no
 * process listing shows them). `<key>` starts every header: file contents cannot pass for one. Any line that does not
 * start with it, a path whose length differs, or a trailer for another id means the stream is out of
 * step: the helper exits (removing its temporary file), and the runner sends what is pending by SFTP.
 *
 * The root is entered at start (`$1`); with `$2`, where it led when it was listed (then an `x`), it must lead there
 * still (remote-place.ts), else the helper exits and the runner sends by SFTP, which checks the same.
 * Each request enters the root by its name again and must reach the same place (answer `moved`).
 *
 * A write: the folder is entered with `cd -P` (symlinks resolved) and must lie inside the physical
 * root; the temporary file `.kubedev-<tmp>-<id>.tmp` must not exist (not even as a dangling link)
 * and is created with noclobber (O_EXCL) and the file's mode by umask; `head -c` reads exactly <size> bytes from the pipe
 * (GNU head reads no further than asked); on commit it gets its mode (only when umask cannot give it),
 * its mtime, and `mv -T` renames it over the target (never into a folder of that name). Answers:
 * ok, aborted, nodir, outside, moved, refused, create, write, mode, time, rename — anything but ok left the
 * target as it was and removed the temporary file. A delete enters the folder the same way.
 */
export const HELPER_SCRIPT = `
LC_ALL=C; export LC_ALL
set -f -C
IFS=' ' read -r K F || exit 2
L=$1
cd -P -- "$L" || { echo "noroot"; exit 3; }
R=$PWD
N=$R; case $N in //[!/]*) N=\${N#/} ;; esac
[ -z "$2" ] || [ "$N" = "\${2%x}" ] || { echo "moved"; exit 3; }
case $(head --version 2>/dev/null) in *GNU*) ;; *) echo "nognuhead"; exit 4 ;; esac
T=
trap '[ -n "$T" ] && rm -f -- "$T" </dev/null' EXIT
trap 'exit 1' HUP INT TERM PIPE
# enter LEN: reads the path (LEN bytes), enters its folder (d) physically, names it (b); r=ok, nodir, outside,
# moved (the root leads elsewhere than where the helper started: a builtin cd and test per request) or refused.
enter() {
  IFS= read -r rel || exit 2
  [ "\${#rel}" = "$1" ] || exit 2
  case $rel in */*) d=\${rel%/*} b=\${rel##*/} ;; *) d=. b=$rel ;; esac
  r=ok
  if cd -P -- "$L" 2>/dev/null; then [ "$PWD" = "$R" ] || r=moved; else r=nodir; fi
  [ $r = ok ] && { cd -P -- "./$d" 2>/dev/null || r=nodir; }
  [ $r = ok ] && case $PWD/ in "$R"/*) ;; *) r=outside ;; esac
  case $b in ''|.|..) r=refused ;; esac
}
echo "ready K$K $$"
while IFS= read -r h; do
  set -- $h
  [ "$1" = "K$K" ] || exit 2
  case $2 in
  p) echo "$3 ok" ;;
  w)
    id=$3 n=$4 u=$5 m=$6 t=$7
    enter "$8"
    ran=0
    if [ $r = ok ]; then
      umask "$u"
      T=$PWD/.kubedev-$F-$id.tmp
      [ -e "$T" ] || [ -L "$T" ] && { r=create; T=; }
    fi
    if [ $r = ok ]; then
      { ran=1; head -c "$n" || r=write; } >"$T" || { r=create; T=; }
    fi
    [ $ran = 1 ] || head -c "$n" >/dev/null || exit 2
    IFS= read -r h || exit 2
    set -- $h
    [ "$1" = "K$K" ] && [ "$3" = "$id" ] || exit 2
    [ $r = ok ] && [ "$2" != c ] && r=aborted
    [ $r = ok ] && [ "$m" != - ] && { chmod "$m" -- "$T" </dev/null || r=mode; }
    [ $r = ok ] && { touch -d "@$t" -- "$T" </dev/null || r=time; }
    [ $r = ok ] && { mv -f -T -- "$T" "./$b" </dev/null || r=rename; }
    [ $r = ok ] || { [ -n "$T" ] && rm -f -- "$T" </dev/null; }
    T=
    echo "$id $r"
    ;;
  d)
    id=$3 m=$4
    enter "$5"
    [ $r = ok ] && { mkdir -m "$m" -- "./$b" </dev/null || r=mkdir; }
    echo "$id $r"
    ;;
  r)
    id=$3
    enter "$4"
    [ $r = ok ] && { rm -rf -- "./$b" </dev/null 2>/dev/null || { [ -L "./$b" ] || chmod -R u+rwx -- "./$b" </dev/null 2>/dev/null; rm -rf -- "./$b" </dev/null; } || r=delete; }
    echo "$id $r"
    ;;
  *) exit 2 ;;
  esac
done
`;


/**
 * The supervisor: a POSIX-sh script served from the environment's ConfigMap as the dev container's
 * entrypoint, so any image with /bin/sh works and nothing is injected into the user's image.
 *
 * It runs the dev process ("$@"), restarts it on request or after a crash (backoff 1 s doubling to
 * 30 s, reset after 10 s of life), and runs onSync hooks. In a working directory that is still empty
 * (a new pod, before the first mirror) it waits for the first start request instead of starting a
 * process that could only crash. Requests arrive one per line on a FIFO in
 * the in-memory folder both containers mount (CONTROL_DIR): the runner writes them over the SSH
 * connection it already holds to the sidecar. The FIFO accepts only `restart`, `stop`, `start` and
 * `batch <id> run:<n>|restart...`, where n indexes the hook scripts in the ConfigMap: whoever can write
 * the FIFO can make the supervisor do what the environment declared, never run a command of their own.
 *
 * Events go to the container's log as `[kubedev] <event> ...` lines, between the process's output:
 *   started <gen> | exited <gen> <code> | crashed <gen> <code> <delay-s> | stopped <gen>
 *   waiting for the first mirror: <dir> is empty (...)
 *   hook <batch> <step> running | hook <batch> <step> ok | hook <batch> <step> failed <code> | batch <batch> done
 *   refused <request>
 */
import { CONTROL_DIR, CONTROL_FIFO, EVENT_PREFIX, SUPERVISOR_DIR } from './dev-process';

export const SUPERVISOR_SCRIPT = String.raw`#!/bin/sh
# kubedev supervisor (generated; see lib/supervisor.ts). Runs "$@" as the dev process.
CTL=${'$'}{KUBEDEV_CONTROL:-${CONTROL_DIR}}
HOOKS=${'$'}{KUBEDEV_HOOKS:-${SUPERVISOR_DIR}}
FIFO="$CTL/${CONTROL_FIFO}"
gen=0 pid= running=0 since=0 backoff=1 stopped=0

say() { printf '${EVENT_PREFIX}%s\n' "$*"; }

# $1 and every descendant of it (ppid is the 2nd field after "pid (comm)" in /proc/<pid>/stat).
tree() {
  echo "$1"
  for s in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null < "$s" || continue
    set -- "$1" ${'$'}{line##*) }
    if [ "$3" = "$1" ]; then c=${'$'}{s#/proc/}; tree "${'$'}{c%/stat}"; fi
  done
}

# Prints "yes" when one of the pids in $1 is still running (a zombie is not).
live() {
  for p in $1; do
    read -r line 2>/dev/null < "/proc/$p/stat" || continue
    set -- ${'$'}{line##*) }
    if [ "$1" != Z ]; then echo yes; return; fi
  done
}

# Stops the process and all it started: TERM, up to 3 s, then KILL. The wrapper subshell that started
# it ($pid) is not signalled: it reaps the process (an orphan would stay a zombie: nobody here waits for
# it) and ends; its tree is looked at again every 0.5 s (a process forked just now is caught too); what
# was seen and still runs after 3 s is killed; then the wrapper is reaped.
halt() {
  [ "$running" = 1 ] || return 0
  running=0
  seen= n=0
  while [ -n "$(live "$pid")" ] && [ $n -lt 60 ]; do
    if [ $((n % 10)) = 0 ]; then
      for p in $(tree "$pid"); do [ "$p" = "$pid" ] || { kill -TERM "$p" 2>/dev/null; seen="$seen $p"; }; done
    fi
    sleep 0.05 2>/dev/null || sleep 1; n=$((n + 1))
  done
  for p in $(tree "$pid") $seen; do [ -n "$(live "$p")" ] && kill -KILL "$p" 2>/dev/null; done
  wait "$pid" 2>/dev/null
  say "stopped $gen"
}

start() {
  gen=$((gen + 1))
  [ $# -gt 0 ] || return 0
  g=$gen
  ( "$@" </dev/null 3>&- & c=$!; wait $c; echo "exit $g $?" >&3 ) &
  pid=$! running=1 since=$(date +%s)
  say "started $gen"
}

on_exit() {
  [ "$1" = "$gen" ] && [ "$running" = 1 ] || return 0
  running=0
  if [ "$2" = 0 ]; then say "exited $1 0"; return 0; fi
  now=$(date +%s)
  [ $((now - since)) -ge 10 ] && backoff=1
  say "crashed $1 $2 $backoff"
  ( sleep $backoff; echo "start $1" >&3 ) &
  backoff=$((backoff * 2)); [ $backoff -gt 30 ] && backoff=30
}

run_hook() {
  case $2 in ''|*[!0-9]*) say "refused hook $1 run:$2"; return 0;; esac
  f="$HOOKS/hook-$2.sh"
  [ -f "$f" ] || { say "refused hook $1 run:$2"; return 0; }
  say "hook $1 run:$2 running"
  { sh "$f" 3>&- </dev/null 2>&1; echo $? > "$CTL/hook-$2.code"; } | tee "$CTL/hook-$2.log"
  code=$(cat "$CTL/hook-$2.code" 2>/dev/null || echo 1)
  if [ "$code" = 0 ]; then say "hook $1 run:$2 ok"; else say "hook $1 run:$2 failed $code"; fi
}

batch() {
  id=$1; shift
  case $id in ''|*[!0-9A-Za-z_-]*) say "refused batch"; return 0;; esac
  for step in "$@"; do
    case $step in
      run:*) run_hook "$id" "${'$'}{step#run:}" ;;
      restart) say "hook $id restart running"; restart_cmd; say "hook $id restart ok" ;;
      *) say "refused hook $id $step" ;;
    esac
  done
  say "batch $id done"
}

rm -f "$FIFO"
mkfifo -m 660 "$FIFO" || { say "cannot make $FIFO; is ${CONTROL_DIR} mounted?"; exit 1; }
exec 3<>"$FIFO"
# In the container the supervisor is PID 1: what the dev process orphans (a double fork, a killed
# parent) becomes its child, and no one else reaps it. A tick every 5 s wakes the loop below, whose
# 'jobs' reaps every child that ended (the shell waits for any child there, not only its own jobs).
sh -c 'while sleep 5 && kill -0 "$1" 2>/dev/null; do echo tick >&3; done' kubedev-ticker $$ </dev/null >/dev/null 2>&1 &
ticker=$!
trap 'halt; kill "$ticker" 2>/dev/null; exit 0' TERM INT
# The command stays in ARGV_1..ARGV_n (the loop below reuses "$@"); restart_cmd replays it.
i=1; for a in "$@"; do eval "ARGV_$i=\$a"; i=$((i + 1)); done
eval "restart_cmd() { halt; stopped=0; start $(i=1; for a in "$@"; do printf ' "${'$'}{ARGV_%d}"' $i; i=$((i + 1)); done); }"
# True when the working directory holds nothing (globs, not ls: an image may have no ls).
empty_here() {
  for f in * .[!.]* ..?*; do if [ -e "$f" ] || [ -L "$f" ]; then return 1; fi; done
  return 0
}
if [ $# -eq 0 ]; then say "no command: interactive (kubedev up opens a shell)"
elif empty_here; then
  # A new pod's workspace is empty until the first mirror: started now, the process would only crash
  # (and back off). kubedev up asks for the start once the files are there; so does any start request.
  say "waiting for the first mirror: $PWD is empty (kubedev up starts the process after it)"
else restart_cmd; fi
while :; do
  if ! read -r req args <&3; then sleep 1; continue; fi
  set -f; set -- $args; set +f
  case $req in
    restart) restart_cmd ;;
    stop) halt; stopped=1 ;;
    start)
      # "start <gen>" is a crash's delayed restart (stale if anything happened since); "start" is a request.
      if [ $# -eq 0 ]; then [ "$running" = 1 ] || restart_cmd
      elif [ "$1" = "$gen" ] && [ "$running" = 0 ] && [ "$stopped" = 0 ]; then restart_cmd; fi ;;
    exit) on_exit "$1" "$2" ;;
    batch) batch "$@" ;;
    tick) ;;
    *) say "refused $req" ;;
  esac
  jobs >/dev/null 2>&1
done
`;

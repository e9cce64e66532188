/**
 * Remote changes, seen fast: `inotifywait -m -r` on the server (the sidecar image ships inotify-tools),
 * streamed over the connection the session already holds. Each event names a path (`%w%f`, NUL-ended):
 * a hint — the next pass looks at that path (and its folder, when new) on both sides and compares. An
 * overflow of the server's inotify queue, a name that is not UTF-8 or a path outside the root says
 * "lost track": the next pass lists everything. A path with an internal name in it (the runner's own
 * temporaries, guards and staging folders, `.kubedev-*`: never listed as paths, see ignore.ts) is
 * dropped: a push's own writes would otherwise ask for a pass of their own, which the next save then
 * waits behind. A server without inotifywait is listed every `pollMs` instead, and the runner says so once.
 */
import { isUtf8 } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { ClientChannel } from 'ssh2';
import { INTERNAL_PREFIX, isInternalPath } from './ignore';
import { Connection } from './transport';
import { shQuote } from './tree';

export interface RemoteWatchEvents {
  /** Paths under the remote root that may have changed ('' = the root); undefined: anything may have. */
  change: [rels: string[] | undefined];
  /**
   * A release's look mark (remote-guard.ts lookMarkOf, relative) was made: every `change` before it was
   * made before the release looked at the swapped file; emitted in stream order with `change`.
   */
  looking: [rel: string];
  /** A folder made or moved in (its tree is watched after its event is printed). */
  folderMade: [rel: string];
  warning: [message: string];
}

const NO_INOTIFY = 42;
/** The stderr line of a strict watcher that gives the mount table's hash. */
const MOUNTS = 'kubedev-mounts';

/** A shell command printing a hash of the mount table (a volume mounted or unmounted under the root changes it, without an event). */
export function mountsCommand(): string {
  return 'cksum </proc/self/mountinfo 2>/dev/null || echo none';
}
/** `stat -f -c %T` names of file systems whose changes made elsewhere inotify does not see (a case pattern). */
const NETWORK_FS = 'nfs*|cifs|smb*|fuse*|9p|ceph|glusterfs|lustre|afs|gpfs|UNKNOWN*';
/**
 * Run before `exec inotifywait` (which keeps the shell's pid, `$$`): a background shell that waits for the
 * channel's stdin to end, then ends inotifywait. sshd closes a dropped session's pipes but signals none
 * of its processes (no pty), and inotifywait, blocked reading its inotify queue, would otherwise stay
 * until the next event in the tree made its write fail: a process and a tree of inotify watches on the
 * server for each dropped connection. The runner never writes to that stdin; it ends with the channel.
 * A background list's stdin is /dev/null (POSIX, without job control): the channel's goes in as fd 3.
 * Its own output goes nowhere: the channel closes when inotifywait ends, whatever this shell waits for.
 * When inotifywait ended by itself, the `kill` that follows the channel's close (milliseconds later)
 * finds no process, or in theory one the kernel gave that pid since; its error is discarded.
 */
const UNTIL_STDIN_ENDS = '{ exec 3<&0; { while read -r _; do :; done <&3; kill $$; } </dev/null >/dev/null 2>&1 & } && ';
/** How long the server may take to set up its watches before the first listing goes ahead anyway. */
const SETUP_MS = 10_000;

export class RemoteWatcher extends EventEmitter<RemoteWatchEvents> {
  private channel?: ClientChannel;
  private timer?: NodeJS.Timeout;
  private saidPolling = false;
  private stopped = false;
  /** 'inotify' or 'poll' once started. */
  how?: 'inotify' | 'poll';
  /** The server said every watch is in place (start() goes ahead without it after SETUP_MS). */
  established = false;

  /** The server's mount table when the watcher started (`strict`): a hash, see mountsCommand. */
  mounts?: string;

  /**
   * `strict` (an agent's kept listing, kept-remote.ts): refuse (end, as without inotifywait) where the
   * root is on a network or FUSE file system, whose changes made elsewhere (another node mounting the
   * same volume) inotify never reports; report every write (`modify`: an append to a file held open
   * never closes it); note the mount table.
   */
  constructor(private readonly root: string, private readonly pollMs: number, pollOnly = false, private readonly strict = false) {
    super();
    if (pollOnly) this.how = 'poll';
  }

  /** Whether the server's inotifywait is running (started, not stopped since). */
  get watching(): boolean {
    return this.how === 'inotify' && this.channel !== undefined && !this.stopped;
  }

  /** Starts watching over `conn`; resolves once the server's watches are in place (or polling began). */
  async start(conn: Pick<Connection, 'channel' | 'alive'>): Promise<'inotify' | 'poll'> {
    this.halt();
    this.established = false;
    this.stopped = false;
    if (this.how !== 'poll') {
      const strict = this.strict ? `case $(stat -f -c %T -- ${shQuote(this.root)} 2>/dev/null || echo UNKNOWN) in ${NETWORK_FS}) exit ${NO_INOTIFY};; esac; printf '${MOUNTS} %s\n' "$(${mountsCommand()})" >&2; ` : '';
      // q_overflow and unmount are printed only when asked for (inotifywait prints the events of -e alone).
      const events = `close_write,create,delete,move,attrib,delete_self,move_self,q_overflow,unmount${this.strict ? ',modify' : ''}`;
      const command = `${strict}command -v inotifywait >/dev/null 2>&1 || exit ${NO_INOTIFY}; ${UNTIL_STDIN_ENDS}exec inotifywait -m -r -e ${events} --no-newline --format '%e %w%f%0' -- ${shQuote(this.root)} 3<&-`;
      const ch = await conn.channel(command);
      if (this.stopped) {
        // Closed while the channel was opening: it goes, with the server's process.
        ch.on('error', () => undefined);
        ch.signal?.('KILL');
        ch.close();
        return 'poll';
      }
      this.channel = ch;
      const ready = await new Promise<'ready' | 'missing' | 'stopped'>((resolve) => {
        let err = '';
        const t = setTimeout(() => resolve('ready'), SETUP_MS);
        ch.stderr.on('data', (b: Buffer) => {
          const text = b.toString('utf8');
          // A folder made later that could not be watched (the watch limit): changes in it go unseen.
          if (this.established && /Couldn't watch|upper limit/i.test(text) && !this.stopped) this.emit('change', undefined);
          if (err.length > 4096) return;
          err += text;
          const m = new RegExp(`${MOUNTS} ([^\n]*)\n`).exec(err);
          if (m) this.mounts = m[1];
          if (!this.established && /Watches established/.test(err)) {
            this.established = true;
            clearTimeout(t);
            resolve('ready');
          }
        });
        ch.once('close', (code: number | null) => {
          clearTimeout(t);
          if (this.channel === ch) this.channel = undefined;
          if (code === NO_INOTIFY) return resolve('missing');
          if (!this.stopped && conn.alive) {
            this.emit('warning', `the remote watcher stopped (${err.trim().split('\n').pop() || `exit ${code}`}); remote changes are found by listing every ${this.pollMs} ms until the next reconnect`);
            this.poll();
          }
          resolve('stopped');
        });
        let rest: Buffer = Buffer.alloc(0);
        ch.on('data', (b: Buffer) => {
          rest = rest.length > 0 ? Buffer.concat([rest, b]) : b;
          let rels: string[] = [];
          let lost = false;
          const flush = (): void => {
            if (!this.stopped && !lost && rels.length > 0) this.emit('change', rels);
            rels = [];
          };
          for (let nul = rest.indexOf(0); nul >= 0; nul = rest.indexOf(0)) {
            const record = rest.subarray(0, nul);
            const rel = this.relOf(record);
            rest = rest.subarray(nul + 1);
            if (rel === undefined) lost = true;
            else if (!isInternalPath(rel)) {
              rels.push(rel);
              // inotifywait watches a new folder's tree after printing its event (kept-remote.ts waits for a mark then).
              if (/^[A-Z_,]*ISDIR[A-Z_,]* /.test(record.toString('latin1')) && /^[A-Z_,]*(CREATE|MOVED_TO)/.test(record.toString('latin1'))) this.emit('folderMade', rel);
            }
            else if (MARK.test(rel) && /^[A-Z_,]*CREATE[A-Z_,]* /.test(record.toString('latin1'))) {
              // What came before it in the stream was made before the mark (one inotify queue, in order).
              flush();
              if (!this.stopped) this.emit('looking', rel);
            }
          }
          if (this.stopped) return;
          if (lost) this.emit('change', undefined);
          else flush();
        });
      });
      if (ready === 'ready' && this.channel) return (this.how = 'inotify');
      // It ended (said above when it matters): inotifywait is there, so the next start tries it again.
      if (ready === 'stopped') {
        this.poll();
        return 'poll';
      }
      if (this.how === undefined) this.how = 'poll';
    }
    if (!this.saidPolling) {
      this.saidPolling = true;
      this.emit('warning', `the server has no 'inotifywait' (inotify-tools); remote changes are found by listing '${this.root}' every ${this.pollMs} ms. Install inotify-tools on the server (the kubedev sidecar image has it) for changes seen at once`);
    }
    this.poll();
    return 'poll';
  }

  /** `EVENTS /root/a/b` -> 'a/b'; undefined when the watcher lost track (or the path is not plainly below the root). */
  private relOf(record: Buffer): string | undefined {
    if (!isUtf8(record)) return undefined;
    const text = record.toString('utf8');
    const sp = text.indexOf(' ');
    if (sp < 0 || /Q_OVERFLOW|UNMOUNT/.test(text.slice(0, sp))) return undefined;
    const abs = text.slice(sp + 1);
    const prefix = `${this.root.replace(/\/+$/, '')}/`;
    if (abs === prefix || abs === prefix.slice(0, -1)) return '';
    if (!abs.startsWith(prefix)) return undefined;
    return abs.slice(prefix.length).replace(/\/+$/, '');
  }

  private poll(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.emit('change', undefined), this.pollMs);
    this.timer.unref?.();
  }

  private halt(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const ch = this.channel;
    this.channel = undefined;
    if (ch) {
      ch.on('error', () => undefined);
      ch.signal?.('KILL');
      ch.close();
    }
  }

  /** Stops watching (idempotent). */
  close(): void {
    this.stopped = true;
    this.halt();
  }
}

/** A release's look mark (remote-guard.ts lookMarkOf). */
const MARK = new RegExp(`(^|/)${INTERNAL_PREFIX.replace(/[.]/g, '\\.')}look-[0-9a-f]+-\\d+$`);

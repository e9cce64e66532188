/**
 * Watches a local tree for the runner. chokidar 4 watches FOLDERS ONLY (every file and symlink is
 * `ignored`), and the runner listens to its `raw` events, which carry the name of the child that
 * changed inside a watched folder. With defaults chokidar keeps one fs.watch handle, a stats object and
 * throttling state per file (734 MB on 100,000 files); here it keeps one per folder, and the runner's
 * own compact index (see session.ts) decides what changed by lstat. Every event only names a path as
 * dirty; nothing is trusted from the event itself, so a lost or merged event cannot leave a path stale
 * as long as its folder reports something.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { FSWatcher, watch } from 'chokidar';
import { IgnoreMatcher } from './ignore';

export interface TreeWatcherEvents {
  /** POSIX paths relative to the root that may have changed ('' for the root itself). */
  dirty: [rels: string[]];
  /** A problem the user should know of (a folder that cannot be watched). */
  warning: [message: string];
  /** The watcher cannot go on (e.g. the inotify watch limit). */
  error: [err: Error];
}

/** After a new folder is seen, rescan it again this much later (its watch may start late). */
const SETTLE_MS = 60;

export class TreeWatcher extends EventEmitter<TreeWatcherEvents> {
  private watcher?: FSWatcher;
  private closing?: Promise<void>;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly root: string, private readonly ig: IgnoreMatcher) {
    super();
  }

  private rel(abs: string): string | undefined {
    const r = path.relative(this.root, abs);
    if (r.startsWith('..') || path.isAbsolute(r)) return undefined;
    return r.split(path.sep).join('/');
  }

  /** Starts watching; resolves once every folder is watched. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    const w = watch(this.root, {
      persistent: true,
      ignoreInitial: true,
      followSymlinks: false,
      atomic: false,
      alwaysStat: false,
      ignored: (abs: string, stats?: { isDirectory(): boolean }) => {
        const rel = this.rel(abs);
        if (rel === undefined || rel === '') return false;
        if (stats) return !stats.isDirectory() || this.ig.ignores(rel, true);
        return this.ig.ignores(rel, true) && this.ig.ignores(rel, false);
      },
    });
    this.watcher = w;
    w.on('raw', (_event: string, evPath: string | null, opts: unknown) => {
      const dir = (opts as { watchedPath?: string } | undefined)?.watchedPath;
      if (!dir) return;
      const abs = evPath ? path.join(dir, evPath) : dir;
      const rel = this.rel(abs);
      if (rel !== undefined) this.emit('dirty', [rel]);
    });
    w.on('addDir', (abs: string) => {
      const rel = this.rel(abs);
      if (rel === undefined || rel === '') return;
      this.emit('dirty', [rel]);
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!this.closing) this.emit('dirty', [rel]);
      }, SETTLE_MS);
      this.timers.add(t);
    });
    w.on('unlinkDir', (abs: string) => {
      const rel = this.rel(abs);
      if (rel !== undefined && rel !== '') this.emit('dirty', [rel]);
    });
    w.on('error', (e: unknown) => this.triage(e as NodeJS.ErrnoException));
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(options.signal?.reason ?? new Error('aborted'));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      w.once('ready', () => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** The one place watcher errors are sorted: races are normal, limits and permissions are not. */
  private triage(e: NodeJS.ErrnoException): void {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return;
    if (e.code === 'ENOSPC') {
      this.emit('error', new Error(`cannot watch '${this.root}': the kernel's inotify watch limit is reached. Raise it (sysctl -w fs.inotify.max_user_watches=524288) or add large folders to .kubedevignore`));
      return;
    }
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      this.emit('warning', `cannot watch '${e.path ?? this.root}' (${e.code}); changes inside it are not mirrored until the next full pass. Fix its permissions or ignore it`);
      return;
    }
    this.emit('error', new Error(`watching '${this.root}' failed: ${e.message}`));
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      await this.watcher?.close();
    })();
    return this.closing;
  }
}

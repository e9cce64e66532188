/**
 * Watches a local tree for the runner: one non-recursive fs.watch (inotify) per FOLDER, none per file.
 *
 * Why not chokidar's own walk: on 100,000 files chokidar 4 with default options held 734 MB; even told
 * to ignore every file (folders only) it held ~420 MB resident, because its start-up walk lstat's every
 * entry through the thread pool. The runner already lists the tree itself (scan.ts), so it adds a watch
 * for each folder *before* it lists that folder (a file created in between is then either listed or
 * reported), and keeps one compact index (session.ts) to decide what changed. Events only name a
 * path as dirty; nothing is trusted from the event itself, so merged or reordered events cannot leave a
 * path stale: the batch lstat's it and compares with the index. A folder inotify reports on covers
 * every kind of change of its children (create, write, chmod, delete, rename in and out).
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WatchBackend, WatchEvents } from './backend';

/** The Linux backend (`--watch per-folder`): kept from before the interface, under its old name. */
export class TreeWatcher extends EventEmitter<WatchEvents> implements WatchBackend {
  readonly name = 'per-folder';
  readonly recursive = false;
  readonly polls = false;
  private readonly watchers = new Map<string, fs.FSWatcher>();
  /** Folders it could not watch (EACCES, EPERM), told once until a watch of them works again. */
  private readonly refused = new Set<string>();
  private closed = false;

  constructor(private readonly root: string) {
    super();
  }

  async start(): Promise<void> {
    // Folders are watched one by one, as the scans list them (add).
  }

  /** Number of folders watched. */
  get size(): number {
    return this.watchers.size;
  }

  /** Whether folder `rel` is watched. */
  watches(rel: string): boolean {
    return this.watchers.has(rel);
  }

  /** Watches folder `rel` ('' = the root), if not yet watched. Call before listing it. */
  add(rel: string): void {
    if (this.closed || this.watchers.has(rel)) return;
    let w: fs.FSWatcher;
    try {
      w = fs.watch(path.join(this.root, rel), { persistent: true }, (_event, name) => {
        if (this.closed) return;
        if (name === null || name === undefined) {
          this.emit('rescan', rel, 'an event without a file name');
          return;
        }
        const child = String(name);
        this.emit('dirty', [rel === '' ? child : `${rel}/${child}`]);
      });
    } catch (e) {
      this.triage(e as NodeJS.ErrnoException, rel);
      return;
    }
    w.on('error', (e) => {
      this.drop(rel);
      this.triage(e as NodeJS.ErrnoException, rel);
    });
    this.watchers.set(rel, w);
    this.refused.delete(rel);
  }

  /** Stops watching `rel` and every folder below it (it was deleted or moved away). */
  removeTree(rel: string): void {
    if (rel === '') return;
    this.drop(rel);
    const prefix = `${rel}/`;
    for (const k of [...this.watchers.keys()]) if (k.startsWith(prefix)) this.drop(k);
    // Gone: one made again under the name and refused is told again.
    for (const k of [...this.refused]) if (k === rel || k.startsWith(prefix)) this.refused.delete(k);
  }

  private drop(rel: string): void {
    const w = this.watchers.get(rel);
    if (!w) return;
    this.watchers.delete(rel);
    w.close();
  }

  /** The one place watcher errors are sorted: races are normal, limits and permissions are not. */
  private triage(e: NodeJS.ErrnoException, rel: string): void {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return; // gone while we looked: its parent reports it
    const where = path.join(this.root, rel);
    if (e.code === 'ENOSPC' || e.code === 'EMFILE') {
      this.emit('error', new Error(`cannot watch '${where}': the kernel's inotify watch limit is reached (${this.watchers.size} folders watched). Raise it (sysctl -w fs.inotify.max_user_watches=524288) or add large folders to .kubedevignore`));
      return;
    }
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      if (this.refused.has(rel)) return; // each rescan tries again: told once
      this.refused.add(rel);
      this.emit('warning', `cannot watch '${where}' (${e.code}); changes inside it are not mirrored. Fix its permissions or add it to .kubedevignore`);
      return;
    }
    this.emit('error', new Error(`watching '${where}' failed: ${e.message}`));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

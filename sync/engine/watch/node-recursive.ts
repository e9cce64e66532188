/**
 * Node's `fs.watch(root, { recursive: true })`: the fallback where `@parcel/watcher` cannot load. Native
 * on macOS (FSEvents) and Windows (ReadDirectoryChangesW); on Linux Node emulates it with one inotify
 * watch per folder added asynchronously, which is slower and lossy (measured: 100,000 files ready in
 * 1.6 s, 263 MB) — hence never 'auto' there. A null file name (Windows overflow) and errors mean events
 * were lost: a full rescan. An error of a native handle also ends it, so it is opened again once. Node's
 * emulation reports a folder it could not list or watch (EACCES, EPERM; ENOENT, ENOTDIR when it went
 * meanwhile) as an error and keeps its handle: a rescan (which names the folder and keeps its remote
 * copy) and a warning, not the end of the session. Node 20's emulation stops listing the folder that
 * held it there, so folders beside it may be left unwatched (and one unreadable at the start is not
 * reported at all: the error comes before a listener can be added); such a folder, once readable, is
 * not watched either. Changes there are found by the periodic rescan only: on Linux, per-folder.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { WatchBackend, WatchEvents } from './backend';

/** Node emulates the recursive watch with per-folder watches (Linux and other systems without a native one). */
const EMULATED = process.platform !== 'darwin' && process.platform !== 'win32';
/** The emulation's errors that name one folder and leave the handle watching the rest. */
const ONE_FOLDER = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR']);

export class RecursiveFsWatcher extends EventEmitter<WatchEvents> implements WatchBackend {
  readonly name = 'recursive';
  readonly recursive = true;
  readonly polls = false;
  private w?: fs.FSWatcher;
  private closed = false;
  private reopened = false;
  /** Folders the emulation could not watch, told once each. */
  private readonly told = new Set<string>();

  constructor(private readonly root: string) {
    super();
  }

  async start(): Promise<void> {
    this.open();
  }

  private open(): void {
    const w = fs.watch(this.root, { recursive: true, persistent: true }, (event, name) => {
      if (this.closed) return;
      if (name === null || name === undefined) {
        this.emit('rescan', '', 'an event without a file name (events were lost)');
        return;
      }
      // Windows names folders with '\\'; elsewhere it is a character a name may hold.
      const rel = process.platform === 'win32' ? String(name).split('\\').join('/') : String(name);
      this.emit('dirty', [rel]);
      if (event === 'rename') this.emit('created', [rel]);
    });
    w.on('error', (e: NodeJS.ErrnoException) => {
      if (this.closed) return;
      if (EMULATED && e.code !== undefined && ONE_FOLDER.has(e.code)) {
        const where = e.path ?? this.root;
        if ((e.code === 'EACCES' || e.code === 'EPERM') && !this.told.has(where)) {
          this.told.add(where);
          this.emit('warning', `Node's recursive watcher could not watch '${where}' (${e.code}); folders beside it may be left unwatched, and their changes found only by the periodic rescan. On Linux, use --watch per-folder`);
        }
        this.emit('rescan', '', `a folder could not be watched (${e.message})`);
        return;
      }
      w.close();
      if (this.reopened) {
        this.emit('error', new Error(`watching '${this.root}' failed: ${e.message}. Try --watch poll`));
        return;
      }
      this.reopened = true;
      try {
        this.open();
      } catch (e2) {
        this.emit('error', new Error(`watching '${this.root}' failed: ${(e2 as Error).message}. Try --watch poll`));
        return;
      }
      this.emit('rescan', '', `the watcher failed (${e.message}) and was opened again`);
    });
    this.w = w;
  }

  add(): void {
    // One watch of the root covers every folder.
  }

  removeTree(): void {
    // Nothing to drop.
  }

  async close(): Promise<void> {
    this.closed = true;
    this.w?.close();
    this.w = undefined;
  }
}

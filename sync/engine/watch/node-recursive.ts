/**
 * Node's `fs.watch(root, { recursive: true })`: the fallback where `@parcel/watcher` cannot load. Native
 * on macOS (FSEvents) and Windows (ReadDirectoryChangesW); on Linux Node emulates it with one inotify
 * watch per folder added asynchronously, which is slower and lossy (measured: 100,000 files ready in
 * 1.6 s, 263 MB) — hence never 'auto' there. A null file name (Windows overflow) and errors mean events
 * were lost: a full rescan. An error of a native handle also ends it, so it is opened again once. Node's
 * emulation reports a folder it could not list or watch (EACCES, EPERM; ENOENT, ENOTDIR when it went
 * meanwhile) as an error and goes on watching the rest: a rescan (which names the folder and keeps its
 * remote copy), not the end of the session. Such a folder stays unwatched once readable again, until a
 * rescan of the tree finds what changed in it.
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

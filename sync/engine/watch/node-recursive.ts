/**
 * Node's `fs.watch(root, { recursive: true })`: the fallback where `@parcel/watcher` cannot load. Native
 * on macOS (FSEvents) and Windows (ReadDirectoryChangesW); on Linux Node emulates it with one inotify
 * watch per folder added asynchronously, which is slower and lossy (measured: 100,000 files ready in
 * 1.6 s, 263 MB) — hence never 'auto' there. A null file name (Windows overflow) and errors mean events
 * were lost: a full rescan. An error also ends the handle, so it is opened again once.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { WatchBackend, WatchEvents } from './backend';

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
      const rel = String(name).split('\\').join('/');
      this.emit('dirty', [rel]);
      if (event === 'rename') this.emit('created', [rel]);
    });
    w.on('error', (e) => {
      if (this.closed) return;
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

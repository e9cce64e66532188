/**
 * One recursive native watch of the root through `@parcel/watcher` (the watcher VS Code ships): FSEvents
 * on macOS, ReadDirectoryChangesW on Windows. It is 'auto' only there; on Linux its inotify backend is
 * run by the contract suite alone (it misses files made in new nested folders, parcel-bundler/watcher#97:
 * the guard's second look at new folders covers that). The native module comes prebuilt inside its npm
 * package (its install script stays disabled); if it cannot load, `loadParcel` says why and the caller
 * falls back to Node's recursive fs.watch.
 *
 * Every error the native side reports (FSEvents "must scan subdirs", a Windows buffer overflow) means
 * events were lost: a full rescan, never a fatal error.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { relOf, WatchBackend, WatchEvents } from './backend';

type Parcel = typeof import('@parcel/watcher');
type Subscription = Awaited<ReturnType<Parcel['subscribe']>>;

let loaded: Parcel | Error | undefined;

/** The native module, or the reason it cannot load (loaded once per process). */
export function loadParcel(): Parcel | Error {
  if (loaded === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require('@parcel/watcher') as Parcel;
    } catch (e) {
      loaded = e as Error;
    }
  }
  return loaded;
}

/** parcel's own name for this platform's native backend. */
function nativeBackend(): 'fs-events' | 'windows' | 'inotify' {
  if (process.platform === 'darwin') return 'fs-events';
  if (process.platform === 'win32') return 'windows';
  return 'inotify';
}

export class ParcelWatcher extends EventEmitter<WatchEvents> implements WatchBackend {
  readonly name = 'parcel';
  readonly recursive = true;
  readonly polls = false;
  private sub?: Subscription;
  private closed = false;

  constructor(private readonly root: string, private readonly ignoredDirs: readonly string[]) {
    super();
  }

  async start(): Promise<void> {
    const parcel = loadParcel();
    if (parcel instanceof Error) throw parcel;
    // FSEvents reports real paths (/private/var/... for /var/...): match both spellings of the root.
    const real = await fs.promises.realpath(this.root).catch(() => this.root);
    const sub = await parcel.subscribe(this.root, (err, events) => {
      if (this.closed) return;
      if (err) {
        this.emit('rescan', '', `the native watcher reported: ${err.message}`);
        return;
      }
      const dirty: string[] = [];
      const created: string[] = [];
      for (const ev of events) {
        const rel = relOf(this.root, ev.path, path.sep) ?? (real === this.root ? undefined : relOf(real, ev.path, path.sep));
        if (rel === undefined) continue;
        dirty.push(rel);
        if (ev.type === 'create') created.push(rel);
      }
      if (dirty.length > 0) this.emit('dirty', dirty);
      if (created.length > 0) this.emit('created', created);
    }, { backend: nativeBackend(), ignore: [...this.ignoredDirs] });
    if (this.closed) await sub.unsubscribe();
    else this.sub = sub;
  }

  add(): void {
    // One watch of the root covers every folder.
  }

  removeTree(): void {
    // Nothing to drop.
  }

  async close(): Promise<void> {
    this.closed = true;
    const sub = this.sub;
    this.sub = undefined;
    await sub?.unsubscribe().catch(() => undefined);
  }
}

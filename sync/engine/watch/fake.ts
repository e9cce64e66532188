/**
 * A backend that misbehaves on purpose, for the contract suite: it wraps a real one and does to its
 * events what FSEvents, ReadDirectoryChangesW and inotify do on bad days. The mirror must converge
 * whatever it does (test/watch-contract.test.ts).
 *
 *   coalesce    paths become their folders, gathered 30 ms (FSEvents without file-level events)
 *   duplicate   every event twice, the second 20 ms later
 *   reorder     events gathered 40 ms, then delivered in reverse, one by one
 *   drop        two events of three never arrive (only the periodic rescan can find them)
 *   null-names  every event loses its name (Windows overflow): a rescan of its folder or of the tree
 *   overflow    after 5 events, nothing for 150 ms, then "overflow" (inotify IN_Q_OVERFLOW)
 *   error       events stop and the native side reports an error (EIO), then they flow again
 *   pause       nothing is delivered while `paused` (the machine sleeps); the test moves the clock
 */
import { EventEmitter } from 'node:events';
import { WatchBackend, WatchEvents } from './backend';

export const MISBEHAVIOURS = ['coalesce', 'duplicate', 'reorder', 'drop', 'null-names', 'overflow', 'error', 'pause'] as const;
export type Misbehaviour = (typeof MISBEHAVIOURS)[number];

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

export class MisbehavingWatcher extends EventEmitter<WatchEvents> implements WatchBackend {
  readonly name: string;
  readonly recursive: boolean;
  readonly polls = false;
  /** `pause`: while true, every event is lost. */
  paused = false;
  private held: string[] = [];
  private flushT?: NodeJS.Timeout;
  private readonly timers = new Set<NodeJS.Timeout>();
  private seen = 0;
  private muteUntil = 0;
  private closed = false;

  constructor(private readonly inner: WatchBackend, readonly mode: Misbehaviour) {
    super();
    this.name = `fake-${mode}(${inner.name})`;
    this.recursive = inner.recursive;
    inner.on('dirty', (rels) => this.onDirty(rels));
    inner.on('created', (rels) => this.emit('created', rels));
    inner.on('rescan', (rel, reason) => this.emit('rescan', rel, reason));
    inner.on('warning', (m) => this.emit('warning', m));
    inner.on('error', (e) => this.emit('error', e));
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) f();
    }, ms);
    this.timers.add(t);
  }

  private hold(rels: readonly string[], ms: number): void {
    this.held.push(...rels);
    this.flushT ??= setTimeout(() => {
      this.flushT = undefined;
      const out = this.held;
      this.held = [];
      if (this.closed) return;
      if (this.mode === 'coalesce') this.emit('dirty', [...new Set(out.map(parentOf))]);
      else for (const r of out.reverse()) this.emit('dirty', [r]);
    }, ms);
  }

  private onDirty(rels: string[]): void {
    this.seen += rels.length;
    switch (this.mode) {
      case 'coalesce':
        return this.hold(rels, 30);
      case 'reorder':
        return this.hold(rels, 40);
      case 'duplicate':
        this.emit('dirty', rels);
        return this.later(20, () => this.emit('dirty', rels));
      case 'drop': {
        const kept = rels.filter((_, i) => (this.seen - rels.length + i) % 3 === 0);
        if (kept.length > 0) this.emit('dirty', kept);
        return;
      }
      case 'null-names':
        for (const r of rels) this.emit('rescan', this.seen % 2 === 0 ? parentOf(r) : '', 'an event without a file name');
        return;
      case 'overflow':
      case 'error': {
        const now = Date.now();
        if (now < this.muteUntil) return;
        if (this.seen <= 5) return void this.emit('dirty', rels);
        if (this.muteUntil !== 0) return void this.emit('dirty', rels);
        this.muteUntil = now + 150;
        const why = this.mode === 'overflow' ? 'the event queue overflowed' : 'the native watcher reported: EIO';
        return this.later(150, () => this.emit('rescan', '', why));
      }
      case 'pause':
        if (!this.paused) this.emit('dirty', rels);
        return;
    }
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  add(rel: string): void {
    this.inner.add(rel);
  }

  removeTree(rel: string): void {
    this.inner.removeTree(rel);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.flushT);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.inner.close();
  }
}

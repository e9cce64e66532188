/**
 * Polling, for file systems that deliver no events (network mounts; see fs-kind.ts): the backend itself
 * reports nothing, and the guard rescans the tree every few seconds instead, at an interval scaled to
 * what a scan costs (see guard.ts).
 */
import { EventEmitter } from 'node:events';
import { WatchBackend, WatchEvents } from './backend';

/** Polling: reports nothing; the guard rescans the tree every few seconds instead (see guard.ts). */
export class PollWatcher extends EventEmitter<WatchEvents> implements WatchBackend {
  readonly name = 'poll';
  readonly recursive = false;
  readonly polls = true;
  async start(): Promise<void> {
    // The guard's timer does the work.
  }
  add(): void {
    // Nothing to watch.
  }
  removeTree(): void {
    // Nothing to drop.
  }
  async close(): Promise<void> {
    // Nothing held.
  }
}

/** A watch backend that reports nothing by itself: tests emit its events, or rely on its silence (changes no event tells of). */
import { EventEmitter } from 'node:events';
import { WatchBackend, WatchEvents } from '../../sync/engine/watch';

export class SilentBackend extends EventEmitter<WatchEvents> implements WatchBackend {
  readonly name = 'silent';
  readonly recursive = true;
  readonly polls = false;
  async start(): Promise<void> {}
  add(): void {}
  removeTree(): void {}
  async close(): Promise<void> {}
}

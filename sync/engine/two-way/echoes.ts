/**
 * The echoes of files a pass swapped in (push-inline.ts): the runner's own rename reaches the server's
 * watcher as an event, which would run a pass of its own (a listing round trip the next save waits
 * behind). A swapped file's events are held until both (a) the release's look mark (remote-guard.ts
 * lookMarkOf, made just before the release looks at the file) comes through the same watcher — what
 * came before it was made before the look — and (b) that look found exactly the inode, size, mtime and
 * mode the swap left: then nothing else wrote the file between the swap and the look, and the held
 * events are the swap's own. Otherwise, or after ECHO_MS, they ask for a pass as any event does.
 */
import { lookMarkOf } from './remote-guard';

/** A swapped file's echo is held at most this long; then its events ask for a pass. */
export const ECHO_MS = 5000;

interface Echo {
  readonly guard: string;
  /** `ino/size/mtime/mode` just after the swap. */
  readonly after: string;
  /** Events for it came (held) before its look mark. */
  held: boolean;
  /** The release's look mark came through the server's watcher: later events are not the swap's. */
  marked: boolean;
  /** What the release found of the file just before it removed the guard. */
  looked?: string;
  readonly timer: NodeJS.Timeout;
}

export class EchoHold {
  private readonly echoes = new Map<string, Echo>();
  /** Look mark (relative) -> the swapped file's path. */
  private readonly byMark = new Map<string, string>();

  /** `kick(rel)`: the held events of `rel` ask for a pass after all. */
  constructor(private readonly kick: (rel: string) => void) {}

  /** Expects the echo of `rel`, swapped in beside `guard`; `named`: an event for it already came during the pass (held too). */
  expect(rel: string, guard: string, after: string, named: boolean): void {
    if (this.echoes.has(rel)) return;
    const timer = setTimeout(() => this.drop(rel, true), ECHO_MS);
    timer.unref?.();
    this.echoes.set(rel, { guard, after, held: named, marked: false, timer });
    this.byMark.set(lookMarkOf(guard), rel);
  }

  /** True when the server's event for `rel` is held as a swap's echo. */
  hold(rel: string): boolean {
    const e = this.echoes.get(rel);
    if (!e || e.marked) return false;
    e.held = true;
    return true;
  }

  /** The server's watcher saw the look mark `mark` made. */
  marked(mark: string): void {
    const rel = this.byMark.get(mark);
    const e = rel === undefined ? undefined : this.echoes.get(rel);
    if (!e || rel === undefined) return;
    e.marked = true;
    this.settle(rel);
  }

  /** What the release's look found of `rel` (`ino/size/mtime/mode`, or 'gone'). */
  looked(rel: string, stat: string): void {
    const e = this.echoes.get(rel);
    if (!e) return;
    e.looked = stat;
    this.settle(rel);
  }

  /** Forgets every echo (a reconnect lists everything; a close). */
  clear(): void {
    for (const rel of [...this.echoes.keys()]) this.drop(rel, false);
  }

  private settle(rel: string): void {
    const e = this.echoes.get(rel);
    if (e?.marked && e.looked !== undefined) this.drop(rel, e.looked !== e.after);
  }

  /** Stops holding `rel`'s echo; `kick`: its held events (if any) ask for a pass. */
  private drop(rel: string, kick: boolean): void {
    const e = this.echoes.get(rel);
    if (!e) return;
    clearTimeout(e.timer);
    this.echoes.delete(rel);
    this.byMark.delete(lookMarkOf(e.guard));
    if (kick && (e.held || e.looked !== undefined)) this.kick(rel);
  }
}

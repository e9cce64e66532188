/**
 * The warnings a session gives once per path, however many passes meet it: a local path it refused
 * (unreadable, a link leading out, a name other systems cannot hold), a remote name that is not valid
 * UTF-8; and the folders a plan was to delete that the server kept writing into, told at once and kept
 * for the pass to put back into its index.
 */
import { busyWarning } from './remote-fix';
import type { Refusal } from './tree';

export class PathWarnings {
  private readonly refusedTold = new Set<string>();
  private readonly foreignTold = new Set<string>();
  private readonly busyLeft = new Set<string>();

  constructor(private readonly warn: (message: string) => void) {}

  refused(refused: readonly Refusal[]): void {
    for (const r of refused) {
      if (this.refusedTold.has(r.rel)) continue;
      this.refusedTold.add(r.rel);
      this.warn(r.reason);
    }
  }

  foreign(rels: readonly string[]): void {
    for (const rel of rels) {
      if (this.foreignTold.has(rel)) continue;
      this.foreignTold.add(rel);
      this.warn(`remote path '${rel}' has a name that is not valid UTF-8; it is left alone (neither compared nor deleted). Rename or remove it on the server`);
    }
  }

  /** A folder left because the server kept writing into it (remote-fix.ts): told every time. */
  readonly busy = (rel: string): void => {
    this.busyLeft.add(rel);
    this.warn(busyWarning(rel));
  };

  /** The folders left busy since the last call. */
  takeBusy(): string[] {
    const out = [...this.busyLeft];
    this.busyLeft.clear();
    return out;
  }
}

/**
 * What a pass tells of itself: its progress while it applies (bytes sent of the plan's total, at most
 * every 100 ms) and its stats once done.
 */
import type { ApplyResult } from './apply';
import type { Plan } from './plan';
import type { BatchStats } from './session-types';

/** A batch names its paths up to this many (beyond: a mass change, hooks treat it as "everything"). */
const MAX_PATHS = 10_000;
/** The least time between two progress reports. */
const EVERY_MS = 100;

export interface Progress {
  readonly sent: number;
  readonly total: number;
  readonly files: number;
}

export class ProgressMeter {
  private sent = 0;
  private total = 0;
  private files = 0;
  private last = 0;

  /** `tell` is called only while `listened()` says someone listens. */
  constructor(private readonly tell: (p: Progress) => void, private readonly listened: () => boolean) {}

  /** Starts counting for a plan about to be applied (a folder or link counts as 1 KiB). */
  begin(plan: Plan): void {
    this.files = plan.files.length + plan.links.length + plan.dirs.length;
    this.total = plan.files.reduce((n, f) => n + f.entry.size, 0) + 1024 * this.files;
    this.sent = 0;
    this.last = 0;
  }

  add(n: number): void {
    this.sent += n;
    const now = performance.now();
    if (now - this.last < EVERY_MS || !this.listened()) return;
    this.last = now;
    this.tell({ sent: this.sent, total: Math.max(this.total, this.sent), files: this.files });
  }
}

/** What a plan applied as `res` did, since `t0`: what was not sent is not counted. */
export function batchStats(plan: Plan, res: ApplyResult, t0: number): BatchStats {
  const planned = plan.files.length + plan.links.length + plan.dirs.length;
  const unsent = new Set(res.unsent);
  const unsentBytes = plan.files.reduce((n, f) => n + (unsent.has(f.rel) ? f.entry.size : 0), 0);
  const paths = [...plan.dirs, ...plan.files, ...plan.links, ...plan.chmods].map((i) => i.rel).filter((r) => !unsent.has(r));
  const all = paths.length + plan.deletes.length <= MAX_PATHS ? [...paths, ...plan.deletes] : undefined;
  return { files: planned - unsent.size, deleted: plan.deletes.length, bytes: Math.max(0, res.bytes - unsentBytes), ms: performance.now() - t0, method: res.method, paths: all };
}

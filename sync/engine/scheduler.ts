/**
 * When batches run, and the watchdog that makes sure they always do.
 *
 * States: idle (no timer, not running, nothing owed), armed (a timer), running (`running` set; events
 * only add work). `running` is cleared in a `.finally` callback, which always runs after the
 * assignment that stores the promise (never synchronously inside it), and work that arrived meanwhile
 * is scheduled again there: no state holds work without a way out. (The bug this replaces: an async
 * body that found nothing to do finished synchronously, cleared `running` before it was stored, and
 * the loop was never started again.)
 *
 * A batch starts once events have been quiet for `coalesceMs` (5 ms), or at the latest MAX_WINDOW_MS
 * after the first of them: one save is sent at once. A large backlog waits for its burst to end
 * (`settle`): a branch switch goes as one bulk batch.
 *
 * The watchdog, once a second while there is work (a batch, a step, something owed; every 10 s when
 * idle, so that an idle watcher wakes its process rarely): a batch with no progress (no byte sent, no
 * step finished) for `stallMs` is reported through `onStall` (the session drops the connection and owes
 * a full pass); work owed with nothing running or armed is reported through `onStuck` and scheduled.
 */

/** The longest a burst of events is gathered before its batch starts anyway. */
const MAX_WINDOW_MS = 40;
/** How often the watchdog looks while there is work. */
const WATCHDOG_MS = 1_000;
/**
 * How often it looks when idle, as a multiple: each wake-up of an idle process costs (measured here: an
 * empty 1 s setInterval in node cost ~10 ms of CPU per wake-up on this 2-core VM, 0.9 % of a core).
 */
const IDLE_FACTOR = 10;
/**
 * A backlog of this many dirty paths (a branch switch, an unpacked archive) waits for its burst to end
 * before its batch: BULK_QUIET_MS without an event, at most BULK_WINDOW_MS. It then goes as one bulk
 * plan (one archive, one listing of each folder) instead of a batch per slice of the burst, each paying
 * its own scans, round trips and remote processes (a 9,600-path switch went as 3 to 4 batches).
 */
const BULK_BACKLOG = 400;
const BULK_QUIET_MS = 30;
const BULK_WINDOW_MS = 1_000;

export interface SchedulerHooks {
  readonly coalesceMs: number;
  readonly stallMs: number;
  /** How often the watchdog looks. @default 1000 */
  readonly watchdogMs?: number;
  /** Runs batches until nothing is owed (or the session ends). */
  drain(): Promise<void>;
  /** Whether work is waiting (dirty paths, a full pass, a connection to restore). */
  owed(): boolean;
  /** Whether batches may run now (started, not closing, not failed). */
  open(): boolean;
  onStall(what: string): void;
  onStuck(): void;
}

export class Scheduler {
  private timer?: NodeJS.Timeout;
  private runningP?: Promise<void>;
  private lastEventAt = 0;
  private windowStart = 0;
  private watchdog?: NodeJS.Timeout;
  /** Whether the watchdog's next look is the idle one (far off). */
  private watchdogIdle = false;
  private stopped = false;
  /** What the batch under way is doing, and when it last made progress. */
  private stepState?: { what: string; at: number };
  /** More quiet allowed (allowQuiet), by holder. */
  private readonly quiet = new Map<number, number>();
  private quietSeq = 0;

  constructor(private readonly hooks: SchedulerHooks) {}

  /** The batch loop under way, if any. */
  get running(): Promise<void> | undefined {
    return this.runningP;
  }

  /** Whether a batch is running or armed. */
  get busy(): boolean {
    return this.runningP !== undefined || this.timer !== undefined;
  }

  get step(): string | undefined {
    return this.stepState?.what;
  }

  /** An event arrived: (re)arm the coalescing timer. */
  event(): void {
    this.lastEventAt = performance.now();
    this.schedule();
    this.wakeWatchdog();
  }

  schedule(ms = this.hooks.coalesceMs): void {
    if (this.timer || !this.hooks.open()) return;
    this.windowStart = performance.now();
    this.arm(ms, ms === 0);
  }

  private arm(ms: number, immediate: boolean): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const quiet = this.hooks.coalesceMs;
      const now = performance.now();
      if (!immediate && now - this.lastEventAt < quiet && now - this.windowStart < MAX_WINDOW_MS) {
        this.arm(Math.max(1, quiet - (now - this.lastEventAt)), false);
        return;
      }
      this.pump();
    }, ms);
  }

  /** Before a batch of `backlog` dirty paths: a large one waits for its burst to end (see BULK_BACKLOG). */
  async settle(backlog: number): Promise<void> {
    if (backlog < BULK_BACKLOG) return;
    const start = performance.now();
    for (;;) {
      const now = performance.now();
      const quietFor = now - this.lastEventAt;
      if (quietFor >= BULK_QUIET_MS || now - start >= BULK_WINDOW_MS || !this.hooks.open()) return;
      await new Promise((r) => setTimeout(r, BULK_QUIET_MS - quietFor));
    }
  }

  /** Starts the batch loop unless it runs. */
  pump(): void {
    if (this.runningP || !this.hooks.open()) return;
    this.runningP = this.hooks.drain().finally(() => {
      this.runningP = undefined;
      this.stepState = undefined;
      if (this.hooks.open() && this.hooks.owed()) this.schedule(0);
    });
  }

  /** The batch under way names what it does now (and so makes progress). */
  readonly setStep = (what: string): void => {
    this.stepState = { what, at: performance.now() };
    this.wakeWatchdog();
  };

  /**
   * Until the returned function is called, the watchdog allows `ms` more than stallMs without progress
   * (the server copying and checking a large file says nothing); of several held, the largest counts.
   */
  readonly allowQuiet = (ms: number): (() => void) => {
    const id = ++this.quietSeq;
    this.quiet.set(id, ms);
    return () => void this.quiet.delete(id);
  };

  /** Bytes moved: progress for the stall deadline. */
  progress(): void {
    if (this.stepState) this.stepState.at = performance.now();
  }

  clearStep(): void {
    this.stepState = undefined;
  }

  startWatchdog(): void {
    this.stopped = false;
    this.lookSoon(false);
  }

  /** Arms the watchdog's next look: soon while there is work, far off when idle. */
  private lookSoon(idle: boolean): void {
    if (this.stopped) return;
    const ms = this.hooks.watchdogMs ?? WATCHDOG_MS;
    this.watchdogIdle = idle;
    this.watchdog = setTimeout(() => this.look(), idle ? ms * IDLE_FACTOR : ms);
    this.watchdog.unref();
  }

  /** Work came while the watchdog looks only rarely: it looks every second again. */
  private wakeWatchdog(): void {
    if (!this.watchdog || !this.watchdogIdle) return;
    clearTimeout(this.watchdog);
    this.lookSoon(false);
  }

  private look(): void {
    this.watchdog = undefined;
    const open = this.hooks.open();
    if (open || this.stepState) {
      const now = performance.now();
      if (this.stepState && now - this.stepState.at > this.hooks.stallMs + Math.max(0, ...this.quiet.values())) {
        const what = this.stepState.what;
        this.stepState.at = now;
        this.hooks.onStall(what);
      } else if (open && !this.busy && this.hooks.owed()) {
        this.hooks.onStuck();
        this.schedule(0);
      }
    }
    this.lookSoon(!this.stepState && !this.busy && !this.hooks.owed());
  }

  /** Stops timers; the batch under way (if any) is left to finish: await `running`. */
  stop(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = undefined;
    this.watchdogIdle = false;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

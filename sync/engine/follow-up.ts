/**
 * After a reconnect's full pass, one more full pass RECHECK_MS later. The lost connection's server
 * processes (its sftp-server, a tar, a shell) still run what reached them before the cut, and under
 * load they can do so after the new connection has listed the remote and removed the leftovers it
 * found: a cut write's temporary file then appears once that pass is over. The server's watcher leaves
 * the runner's own names out, so nothing but another full listing would find it before the next
 * reconnect. Used by the mirror (session.ts) and two-way (two-way/session.ts), watching only.
 *
 * The sessions call `passStarting` as a full pass takes its owed flag, then `passDone` or `passFailed`:
 * a follow-up asked for while a pass was already under way (its listing older than the ask) is not
 * taken for done by that pass; it is asked for again once that pass is over.
 */

/** How long after a reconnect's full pass the follow-up pass comes. */
export const RECHECK_MS = 3_000;

export class FollowUp {
  private timer?: NodeJS.Timeout;
  private owed = false;
  /** The timer fired: its pass is asked for and not yet begun. */
  private asked = false;
  /** The pass under way is the follow-up. */
  private current = false;
  /** The session is closing: nothing is armed any more (a pass that ends during the shutdown included). */
  private stopped = false;
  /** Follow-up passes run (tests wait for them). */
  count = 0;

  /**
   * `ask()` makes the session owe a full pass; `enabled`: a watching session (a one-shot run ends
   * after its pass: nothing is left running for later).
   */
  constructor(private readonly ms: number, private readonly enabled: boolean, private readonly ask: () => void) {}

  /** A new connection replaced a lost one: its first full pass is owed a follow-up. */
  reconnected(): void {
    if (this.enabled) this.owed = true;
  }

  /** A full pass takes the owed work now. */
  passStarting(): void {
    this.current = this.asked;
    this.asked = false;
  }

  /** That pass failed: a follow-up it was is still owed (the session runs another full pass anyway). */
  passFailed(): void {
    if (this.current) this.asked = true;
    this.current = false;
  }

  /** That pass is done: a follow-up it was is counted; one asked for meanwhile is asked again; one owed is armed. */
  passDone(): void {
    if (this.current) this.count++;
    this.current = false;
    if (this.asked) this.ask();
    if (!this.owed || this.stopped) return;
    this.owed = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.asked = true;
      this.ask();
    }, this.ms);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * The batch scheduler's states (sync/engine/scheduler.ts): idle, armed, running; that no state holds
 * work without a way out; and the watchdog's two alarms (a stalled batch, work owed with nothing
 * scheduled). Real timers, short durations.
 */
import { Scheduler, SchedulerHooks } from '../sync/engine/scheduler';

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

function harness(over: Partial<SchedulerHooks> = {}): { s: Scheduler; owed: { n: number }; drains: { n: number }; stalls: string[]; stuck: { n: number } } {
  const owed = { n: 0 };
  const drains = { n: 0 };
  const stalls: string[] = [];
  const stuck = { n: 0 };
  const s = new Scheduler({
    coalesceMs: 1,
    stallMs: 60_000,
    watchdogMs: 20,
    drain: async () => {
      drains.n++;
      owed.n = 0;
    },
    owed: () => owed.n > 0,
    open: () => true,
    onStall: (w) => stalls.push(w),
    onStuck: () => stuck.n++,
    ...over,
  });
  return { s, owed, drains, stalls, stuck };
}

test('a drain that finds nothing to do (settles synchronously) leaves the scheduler idle, not stuck running', async () => {
  const { s } = harness({ drain: () => Promise.resolve() });
  s.pump();
  expect(s.running).toBeDefined();
  await tick();
  expect(s.running).toBeUndefined();
  expect(s.busy).toBe(false);
  s.pump(); // and it can start again
  expect(s.running).toBeDefined();
  await tick();
  expect(s.busy).toBe(false);
});

test('an event arms the timer (armed), the timer runs one drain (running), then idle', async () => {
  const { s, owed, drains } = harness();
  owed.n = 1;
  s.event();
  expect(s.busy).toBe(true);
  expect(s.running).toBeUndefined();
  await tick(20);
  expect(drains.n).toBe(1);
  expect(s.busy).toBe(false);
});

test('work that arrives while a drain finishes is scheduled again from its finally', async () => {
  let release!: () => void;
  const h = harness();
  const gate = new Promise<void>((r) => (release = r));
  let first = true;
  const s = new Scheduler({
    coalesceMs: 1,
    stallMs: 60_000,
    owed: () => h.owed.n > 0,
    open: () => true,
    onStall: () => undefined,
    onStuck: () => undefined,
    drain: async () => {
      h.drains.n++;
      if (first) {
        first = false;
        await gate;
      }
      h.owed.n = Math.max(0, h.owed.n - 1);
    },
  });
  h.owed.n = 1;
  s.pump();
  h.owed.n = 2; // an event lands while the loop is on its way out
  s.pump(); // ignored: running
  release();
  await tick(30);
  expect(h.drains.n).toBe(2);
  expect(h.owed.n).toBe(0);
  expect(s.busy).toBe(false);
});

test('a closed scheduler neither arms nor runs', async () => {
  const { s, drains } = harness({ open: () => false });
  s.event();
  s.pump();
  await tick(10);
  expect(drains.n).toBe(0);
  expect(s.busy).toBe(false);
});

test('watchdog: a step without progress past stallMs is reported once per deadline, naming the step', async () => {
  const { s, stalls } = harness({ stallMs: 50 });
  s.startWatchdog();
  try {
    s.setStep('writing 3 files (sftp)');
    await tick(90);
    expect(stalls).toEqual(['writing 3 files (sftp)']);
    s.progress();
    await tick(30);
    expect(stalls).toHaveLength(1); // progress moved the deadline
  } finally {
    s.stop();
  }
});

test('watchdog: quiet allowed by transfers under way (large files the server copies and checks): the largest held counts, each until released', async () => {
  const { s, stalls } = harness({ stallMs: 50 });
  s.startWatchdog();
  try {
    const releaseA = s.allowQuiet(100);
    const releaseB = s.allowQuiet(20); // a smaller one named later does not shrink A's
    s.setStep("checking and putting in place the changed copy of 'b.bin'");
    await tick(110);
    expect(stalls).toEqual([]);
    await tick(90);
    expect(stalls).toEqual(["checking and putting in place the changed copy of 'b.bin'"]);
    releaseA();
    releaseB();
    s.setStep('writing 3 files (sftp)'); // nothing held: the plain limit again
    await tick(90);
    expect(stalls).toHaveLength(2);
  } finally {
    s.stop();
  }
});

test('watchdog: work owed with nothing running or armed is reported and scheduled', async () => {
  const { s, owed, drains, stuck } = harness();
  owed.n = 1; // owed, but nobody called event() or pump()
  s.startWatchdog();
  try {
    await tick(80);
    expect(stuck.n).toBeGreaterThanOrEqual(1);
    expect(drains.n).toBe(1);
    expect(owed.n).toBe(0);
  } finally {
    s.stop();
  }
});

test('a large backlog waits for its burst to end (30 ms quiet, 1 s at most); a small one does not wait', async () => {
  const { s } = harness();
  const burst = (ms: number): NodeJS.Timeout => {
    const until = performance.now() + ms;
    const t = setInterval(() => (performance.now() < until ? s.event() : clearInterval(t)), 5);
    return t;
  };
  s.event();
  let t0 = performance.now();
  await s.settle(399);
  expect(performance.now() - t0).toBeLessThan(15);
  // Events every 5 ms for 200 ms: the settle returns once they stop (and 30 ms pass), not before.
  burst(200);
  s.event();
  t0 = performance.now();
  await s.settle(400);
  const waited = performance.now() - t0;
  expect(waited).toBeGreaterThanOrEqual(200);
  expect(waited).toBeLessThan(900);
  // A burst that never stops is sent after 1 s anyway.
  const endless = burst(3_000);
  s.event();
  t0 = performance.now();
  await s.settle(10_000);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(990);
  expect(performance.now() - t0).toBeLessThan(2_000);
  clearInterval(endless);
});

test('idle, the watchdog looks ten times less often (each wake-up of an idle watcher costs CPU); a step or an event brings it back to every tick at once', async () => {
  let looks = 0;
  const { s } = harness({ open: () => (looks++, true) });
  s.startWatchdog();
  try {
    await tick(30); // the first look (soon), then idle
    looks = 0;
    await tick(450); // idle: a look every 200 ms, not every 20 ms
    expect(looks).toBeGreaterThanOrEqual(1);
    expect(looks).toBeLessThanOrEqual(4);
    s.setStep('sending'); // work: every 20 ms again, from now (not after the idle wait)
    looks = 0;
    await tick(200);
    expect(looks).toBeGreaterThanOrEqual(5);
  } finally {
    s.stop();
  }
});

test('a stalled step is still reported when the watchdog was idle as the batch began', async () => {
  const { s, stalls } = harness({ stallMs: 60 });
  s.startWatchdog();
  try {
    await tick(50); // idle by now
    s.setStep('listing');
    await tick(120); // stalled at 60 ms; the idle look would come only ~170 ms from now
    expect(stalls[0]).toBe('listing');
  } finally {
    s.stop();
  }
});

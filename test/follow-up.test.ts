/**
 * FollowUp (sync/engine/follow-up.ts): one more full pass after a reconnect's, asked for `ms` later;
 * a pass that began before the ask is not taken for the follow-up, which is asked for again after it;
 * a failed follow-up stays owed; a one-shot run never arms one.
 */
import { FollowUp } from '../sync/engine/follow-up';

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test('a reconnect\'s pass arms one follow-up; it is counted once its own pass is done; no more after it', () => {
  const asks: number[] = [];
  const f = new FollowUp(3000, true, () => asks.push(Date.now()));
  f.reconnected();
  f.passStarting();
  f.passDone();
  jest.advanceTimersByTime(2999);
  expect(asks).toHaveLength(0);
  jest.advanceTimersByTime(1);
  expect(asks).toHaveLength(1);
  f.passStarting();
  f.passDone();
  expect(f.count).toBe(1);
  jest.advanceTimersByTime(10_000);
  expect(asks).toHaveLength(1);
});

test('asked for while a pass that listed before is under way: that pass is not the follow-up; it is asked for again after it', () => {
  let asks = 0;
  const f = new FollowUp(100, true, () => asks++);
  f.reconnected();
  f.passStarting();
  f.passDone();
  f.passStarting(); // another full pass begins (e.g. a retried one) ...
  jest.advanceTimersByTime(100); // ... and the follow-up is asked for meanwhile
  expect(asks).toBe(1);
  f.passDone();
  expect(f.count).toBe(0);
  expect(asks).toBe(2); // asked again
  f.passStarting();
  f.passDone();
  expect(f.count).toBe(1);
});

test('a follow-up pass that fails stays owed and is counted when a later pass is done; a one-shot run arms nothing', () => {
  let asks = 0;
  const f = new FollowUp(100, true, () => asks++);
  f.reconnected();
  f.passStarting();
  f.passDone();
  jest.advanceTimersByTime(100);
  f.passStarting();
  f.passFailed();
  f.passStarting();
  f.passDone();
  expect(f.count).toBe(1);
  const once = new FollowUp(100, false, () => asks++);
  once.reconnected();
  once.passStarting();
  once.passDone();
  jest.advanceTimersByTime(1000);
  expect(asks).toBe(1);
  expect(once.count).toBe(0);
});

test('stop: an armed follow-up is never asked for, nor one a pass ending during the shutdown would arm', () => {
  let asks = 0;
  const f = new FollowUp(100, true, () => asks++);
  f.reconnected();
  f.passStarting();
  f.passDone();
  f.stop();
  jest.advanceTimersByTime(1000);
  expect(asks).toBe(0);
  f.reconnected(); // a pass under way at the shutdown had reconnected
  f.passStarting();
  f.passDone();
  jest.advanceTimersByTime(1000);
  expect(asks).toBe(0);
});

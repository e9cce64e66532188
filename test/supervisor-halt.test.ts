/**
 * lib's supervisor (run by dash, as in the dev container) stopping its process: nothing of it keeps
 * running and nothing is left as a zombie (the supervisor is the container's PID 1 and waits for no
 * one it did not start), also for a process that ignores TERM and for restarts asked for back to back.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeDevContainer, startSupervisor } from './support/supervisor';

/** Ignores TERM (the disposition survives exec); no children of its own. */
const STUBBORN = `trap '' TERM; echo "up $$"; exec sleep 1000`;

/** Every process below `pid`, as `pid state`; the supervisor's reaping ticker and its sleep are left out. */
function below(pid: number): string[] {
  const kids = new Map<number, { state: string; ppid: number; ticker: boolean }>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticker = fs.readFileSync(`/proc/${d}/cmdline`, 'latin1').split('\0').includes('kubedev-ticker');
      kids.set(Number(d), { state: f[0], ppid: Number(f[1]), ticker });
    } catch {
      // gone meanwhile
    }
  }
  const out: string[] = [];
  const walk = (p: number): void => {
    for (const [k, v] of kids) {
      if (v.ppid !== p || v.ticker) continue;
      out.push(`${k} ${v.state}`);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

async function until(check: () => boolean, ms: number, what: () => string): Promise<void> {
  for (const deadline = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 25))) {
    if (Date.now() > deadline) throw new Error(what());
  }
}

let tmp = '';
let dev: FakeDevContainer | undefined;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-halt-'));
});
afterEach(async () => {
  await dev?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function start(command: string[]): FakeDevContainer {
  const spec = { name: 'api', namespace: 'team-web', owner: 'a@example.com', image: 'debian', command, sync: [{ local: 'src', remote: '/workspace' }] };
  const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  // The supervisor is the container's PID 1: an orphan becomes its child.
  return (dev = startSupervisor(spec, tmp, me, tmp, { pid1: true }));
}

const ask = (d: FakeDevContainer, req: string): void => fs.appendFileSync(path.join(d.control, 'control'), `${req}\n`);

test('stop: a process that ignores TERM is killed after 3 s, and nothing below the supervisor is left, not even a zombie', async () => {
  const d = start(['sh', '-c', STUBBORN]);
  await until(() => /up \d+/.test(d.log()), 5_000, () => `the process never started:\n${d.log()}`);
  // dash (PID 1), the wrapper, the process; waited for, as a fork of the supervisor's own (a process
  // between its fork and its exec) can be counted at that instant (seen in CI: 4 for a moment).
  await until(() => below(d.child.pid as number).length === 3, 2_000, () => `not 3 processes below the supervisor: ${below(d.child.pid as number).join(', ')}`);
  ask(d, 'stop');
  await until(() => d.log().includes('[kubedev] stopped 1'), 6_000, () => `no 'stopped' line:\n${d.log()}`);
  // Only the supervisor itself (below unshare) is left.
  await until(() => below(d.child.pid as number).length === 1, 1_000, () => `left below the supervisor: ${below(d.child.pid as number).join(', ')}`);
});

test('restarts back to back: one process runs at the end, no zombie', async () => {
  const d = start(['sh', '-c', 'echo "up $$"; exec sleep 1000']);
  await until(() => /up \d+/.test(d.log()), 5_000, () => `the process never started:\n${d.log()}`);
  for (let i = 0; i < 5; i++) ask(d, 'restart');
  await until(() => d.log().includes('[kubedev] started 6'), 10_000, () => `not restarted 5 times:\n${d.log()}`);
  await until(() => {
    const left = below(d.child.pid as number);
    // The supervisor, the wrapper subshell and the dev process (sleep), all running.
    return left.length === 3 && left.every((l) => !l.endsWith(' Z'));
  }, 3_000, () => `below the supervisor: ${below(d.child.pid as number).join(', ')}\n${d.log()}`);
  expect(d.log()).not.toMatch(/crashed/);
});

test('an orphan of the dev process (a double fork) that ends is reaped by the supervisor, PID 1, within a tick', async () => {
  // The inner sh is orphaned at once (its parent subshell exits) and ends 0.3 s later: a zombie of PID 1
  // unless the supervisor waits for it.
  const d = start(['sh', '-c', '( sh -c "sleep 0.3" & ); echo "up $$"; exec sleep 1000']);
  await until(() => /up \d+/.test(d.log()), 5_000, () => `the process never started:\n${d.log()}`);
  await new Promise((r) => setTimeout(r, 1_000));
  await until(() => {
    const left = below(d.child.pid as number);
    // The supervisor, the wrapper subshell and the dev process (sleep), none a zombie.
    return left.length === 3 && left.every((l) => !l.endsWith(' Z'));
  }, 7_000, () => `below the supervisor: ${below(d.child.pid as number).join(', ')}\n${d.log()}`);
}, 15_000);

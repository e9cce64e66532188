/**
 * A watch event can name a path below a folder that was since replaced by a symlink: `mv d elsewhere;
 * ln -s elsewhere d`, then a write in `elsewhere/d`, with the event for `d` itself not (yet) in (Node's
 * recursive watcher keeps watching the moved folder and names `d/h2`). The batch must look at `d`, not
 * through it: nothing outside the folder is read or sent, and the remote ends as a full pass leaves it.
 * The backend is cut off after the first mirror so that only the one event the test gives arrives.
 * Real sshd as a non-root user.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyncSession } from '../../sync/engine/session';
import { useArena } from '../support/hostile';
import { nextEvent, tempDir } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();

/** A folder outside the synced one, removed after the test. */
const outsides: string[] = [];
afterEach(() => {
  for (const d of outsides.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function outsideFolder(): string {
  const d = tempDir('swapped-outside');
  outsides.push(d);
  return d;
}

/** A watching session past its first mirror, hearing nothing from its backend any more. */
async function deaf(s: SyncSession): Promise<void> {
  await s.start();
  const b = s.watcher?.backend;
  if (!b) throw new Error('the session has no watcher');
  for (const e of ['dirty', 'created', 'rescan'] as const) b.removeAllListeners(e);
}

async function batchFor(s: SyncSession, rels: string[]): Promise<string[]> {
  const warnings: string[] = [];
  s.on('warning', (m) => warnings.push(m));
  const synced = nextEvent(s, 'synced', 20_000);
  s.watcher?.emit('dirty', rels);
  await synced;
  return warnings;
}

test('a folder replaced by a symlink leading outside, only a path below it reported: nothing outside is sent, the folder goes remotely', async () => {
  const a = h.arena();
  const outside = outsideFolder();
  fs.mkdirSync(path.join(a.local, 'd'));
  fs.writeFileSync(path.join(a.local, 'd', 'h'), 'inside');
  fs.writeFileSync(path.join(a.local, 'keep.txt'), 'keep');
  const s = a.session();
  try {
    await deaf(s);
    expect(fs.readFileSync(path.join(a.remote, 'd', 'h'), 'utf8')).toBe('inside');
    fs.renameSync(path.join(a.local, 'd'), path.join(outside, 'd'));
    fs.symlinkSync(path.join(outside, 'd'), path.join(a.local, 'd'));
    fs.writeFileSync(path.join(outside, 'd', 'h2'), 'outside the synced folder');
    const warnings = await batchFor(s, ['d/h2']);
    expect(fs.existsSync(path.join(a.remote, 'd', 'h2'))).toBe(false);
    expect(fs.existsSync(path.join(a.remote, 'd'))).toBe(false); // as a full pass: a link leading outside is not sent
    expect(warnings.some((w) => w.startsWith("symlink 'd' points outside the synced folder"))).toBe(true);
    expect(fs.readFileSync(path.join(a.remote, 'keep.txt'), 'utf8')).toBe('keep');
  } finally {
    await s.close();
  }
});

test('a folder replaced by a symlink to another folder inside, only paths below it reported: the remote gets the link, not a folder filled through it', async () => {
  const a = h.arena();
  fs.mkdirSync(path.join(a.local, 'd', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(a.local, 'd', 'sub', 'h'), 'one');
  const s = a.session();
  try {
    await deaf(s);
    fs.renameSync(path.join(a.local, 'd'), path.join(a.local, 'e'));
    fs.symlinkSync('e', path.join(a.local, 'd'));
    fs.writeFileSync(path.join(a.local, 'e', 'sub', 'h2'), 'two');
    await batchFor(s, ['d/sub/h2', 'd/sub/h', 'e']);
    expect(fs.lstatSync(path.join(a.remote, 'd')).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(path.join(a.remote, 'd'))).toBe('e');
    expect(a.differences()).toEqual([]);
  } finally {
    await s.close();
  }
});

test('a folder replaced by a file, a path below it reported: the remote folder is replaced by the file', async () => {
  const a = h.arena();
  fs.mkdirSync(path.join(a.local, 'd'));
  fs.writeFileSync(path.join(a.local, 'd', 'h'), 'one');
  const s = a.session();
  try {
    await deaf(s);
    fs.rmSync(path.join(a.local, 'd'), { recursive: true });
    fs.writeFileSync(path.join(a.local, 'd'), 'now a file');
    await batchFor(s, ['d/h']);
    expect(fs.readFileSync(path.join(a.remote, 'd'), 'utf8')).toBe('now a file');
    expect(a.differences()).toEqual([]);
  } finally {
    await s.close();
  }
});

test('polling (and every periodic rescan): a folder replaced by a symlink leading outside goes remotely, as a full pass removes it', async () => {
  const a = h.arena();
  const outside = outsideFolder();
  fs.mkdirSync(path.join(a.local, 'c'));
  fs.writeFileSync(path.join(a.local, 'c', 'g'), 'g');
  fs.writeFileSync(path.join(a.local, 'k'), 'k');
  const s = a.session({ watchBackend: 'poll', pollMs: 200 });
  try {
    await s.start();
    const warned = nextEvent<string>(s, 'warning', 20_000, (m) => m.startsWith("symlink 'c' points outside the synced folder"));
    const synced = nextEvent(s, 'synced', 20_000);
    fs.rmSync(path.join(a.local, 'c'), { recursive: true });
    fs.symlinkSync(outside, path.join(a.local, 'c'));
    await Promise.all([warned, synced]);
    expect(fs.existsSync(path.join(a.remote, 'c'))).toBe(false);
    expect(fs.readFileSync(path.join(a.remote, 'k'), 'utf8')).toBe('k');
  } finally {
    await s.close();
  }
});

/**
 * A file system mounted inside the watched tree (a tmpfs here; a bind mount or a USB stick alike)
 * raises no event, and the watch of the folder it covers goes on watching the folder beneath. The
 * watching session finds the mount in the mount table at its next tick (5 s), rescans the folder and
 * watches what is there now: later writes inside it are seen by events, not left to the periodic
 * rescan (2 minutes); an unmount is handled the same way. Needs root (mount); CI runs as root.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useArena } from '../support/hostile';
import { eventually, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();

function mount(dir: string): void {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=755', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`mounting a tmpfs at '${dir}' failed (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}): this test needs root, as CI runs it`);
  }
}

test('a tmpfs mounted inside the tree, written, then unmounted: mirrored each time, later writes inside it seen by events', async () => {
  const a = h.arena();
  writeTree(a.local, { 'm/beneath.txt': 'under the mount', 'k.txt': 'k' });
  const m = path.join(a.local, 'm');
  const s = a.session(); // per-folder, the periodic rescan 2 minutes away
  let mounted = false;
  try {
    await s.start();
    mount(m);
    mounted = true;
    fs.writeFileSync(path.join(m, 'one.txt'), 'on the tmpfs');
    await eventually(() => a.differences(), 15_000, 'after the mount (the next tick)');
    expect(fs.existsSync(path.join(a.remote, 'm', 'beneath.txt'))).toBe(false);
    // The folder is watched on the new file system now: a write is an event, sent at once.
    fs.writeFileSync(path.join(m, 'two.txt'), 'seen by an event');
    await eventually(() => a.differences(), 2_000, 'a write inside the mount');
    execFileSync('umount', [m]);
    mounted = false;
    await eventually(() => a.differences(), 15_000, 'after the unmount');
    expect(fs.readFileSync(path.join(a.remote, 'm', 'beneath.txt'), 'utf8')).toBe('under the mount');
    fs.writeFileSync(path.join(m, 'three.txt'), 'beneath again');
    await eventually(() => a.differences(), 2_000, 'a write after the unmount');
  } finally {
    if (mounted) execFileSync('umount', ['-l', m]);
    await s.close();
  }
});

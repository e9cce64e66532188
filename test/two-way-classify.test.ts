/**
 * The three-way classification as a table: every cell of (local vs ancestor) x (remote vs ancestor),
 * the tree-shape rules and ownership. Pure: no files, no server.
 */
import { Action, classify, treeOrder } from '../sync/engine/two-way/classify';
import { Agreed, Sig } from '../sync/engine/two-way/state-store';

const f = (s: number, m = 1_000_000, p = 0o644): Sig => ({ t: 'f', s, m, p });
const d = (p = 0o755): Sig => ({ t: 'd', s: 0, m: 0, p });
const V1L = f(1, 1_000_123.5); // a local stat: exact mtime
const V1R = f(1, 1_000_000); // the same file as the remote lists it after the runner sent it
const V2L = f(2, 2_000_777.25);
const V2R = f(2, 3_000_000.5);

type Side = Sig | undefined;
function one(a: Agreed | undefined, l: Side, r: Side): Action {
  return classify(['p'], () => a, () => l, () => r).get('p')?.action as Action;
}

describe('every cell', () => {
  const A: Agreed = { l: V1L, r: V1R };
  test.each<[string, Agreed | undefined, Side, Side, Action]>([
    ['unchanged on both', A, V1L, V1R, 'none'],
    ['changed locally', A, V2L, V1R, 'push'],
    ['deleted locally', A, undefined, V1R, 'delete-remote'],
    ['changed remotely', A, V1L, V2R, 'pull'],
    ['deleted remotely', A, V1L, undefined, 'delete-local'],
    ['deleted on both', A, undefined, undefined, 'none'],
    ['deleted locally, changed remotely: the change wins', A, undefined, V2R, 'pull'],
    ['changed locally, deleted remotely: the change wins', A, V2L, undefined, 'push'],
    ['changed on both, differently', A, V2L, V2R, 'conflict'],
    ['changed on both, alike (size, whole-second mtime, mode)', A, f(2, 3_000_400), f(2, 3_000_000), 'none'],
    ['new locally', undefined, V1L, undefined, 'push'],
    ['new remotely', undefined, undefined, V1R, 'pull'],
    ['new on both, alike', undefined, V1L, V1R, 'none'],
    ['new on both, different', undefined, V1L, V2R, 'conflict'],
    ['a file locally, a folder remotely, both new', undefined, V1L, d(), 'conflict'],
    ['folders on both, modes differ: local mode wins', undefined, d(0o755), d(0o700), 'push'],
    ['mode changed locally', A, { ...V1L, p: 0o755 }, V1R, 'push'],
    ['a remote mtime with a fraction is never "alike"', undefined, f(1, 1_000_000), f(1, 1_000_000.5), 'conflict'],
  ])('%s', (_name, a, l, r, want) => {
    expect(one(a, l, r)).toBe(want);
  });
});

describe('a local file changed by its mtime only, while the remote changed', () => {
  const A: Agreed = { l: V1L, r: V1R, h: 'hash-of-v1' };
  const touched = f(1, 5_000_000);
  const decide = (a: Agreed, l: Side, r: Side, holds: boolean): { action: Action; asked: number } => {
    let asked = 0;
    const out = classify(['p'], () => a, () => l, () => r, undefined, (rel, seen, hash) => {
      asked++;
      expect([rel, seen, hash]).toEqual(['p', l, a.h]);
      return holds ? { ino: 7, ctimeMs: 1 } : undefined;
    });
    const got = out.get('p');
    if (got?.action === 'pull') expect(got.seen).toEqual({ ino: 7, ctimeMs: 1 }); // the pull lands only over the file as read
    return { action: got?.action as Action, asked };
  };
  test.each<[string, Agreed, Side, Side, boolean, Action, number]>([
    ['holding the ancestor bytes: pulled', A, touched, V2R, true, 'pull', 1],
    ['holding other bytes: a conflict', A, touched, V2R, false, 'conflict', 1],
    ['no hash in the ancestor: a conflict, nothing read', { l: V1L, r: V1R }, touched, V2R, true, 'conflict', 0],
    ['another size: a conflict, nothing read', A, f(3, 5_000_000), V2R, true, 'conflict', 0],
    ['another mode: a conflict, nothing read', A, { ...touched, p: 0o755 }, V2R, true, 'conflict', 0],
    ['the remote unchanged: pushed as before, nothing read', A, touched, V1R, true, 'push', 0],
    ['the remote deleted: the local change wins as before, nothing read', A, touched, undefined, true, 'push', 0],
    ['the remote now a folder: a conflict, nothing read', A, touched, d(), true, 'conflict', 0],
  ])('%s', (_name, a, l, r, holds, want, asked) => {
    expect(decide(a, l, r, holds)).toEqual({ action: want, asked });
  });

  test('a path the laptop owns (localOwns): the container change is held, as for an unchanged local file', () => {
    const own = { remoteOwns: () => false, localOwns: () => true };
    const out = classify(['p'], () => A, () => touched, () => V2R, own, () => ({ ino: 7, ctimeMs: 1 })).get('p');
    expect([out?.action, out?.why]).toEqual(['hold', 'localOwns: the laptop owns it; the remote change stays remote']);
  });
});

describe('a local file changed by its ctime only (size, mtime and mode put back)', () => {
  const C1 = { ...V1L, c: 1_000_200 };
  const rewritten = { ...V1L, c: 9_000_000 };
  const A: Agreed = { l: C1, r: V1R, h: 'hash-of-v1' };
  const decide = (a: Agreed, l: Side, r: Side, holds: boolean): { action: Action; asked: number } => {
    let asked = 0;
    const out = classify(['p'], () => a, () => l, () => r, undefined, () => {
      asked++;
      return holds ? { ino: 7, ctimeMs: 9_000_000 } : undefined;
    });
    const got = out.get('p');
    if (got?.action === 'pull' && asked > 0) expect(got.seen).toEqual({ ino: 7, ctimeMs: 9_000_000 }); // lands only over the file as read
    return { action: got?.action as Action, asked };
  };
  test.each<[string, Agreed, Side, Side, boolean, Action, number]>([
    ['the same ctime: unchanged, nothing read', A, C1, V2R, true, 'pull', 0],
    ['other bytes while the remote changed: a conflict, never a pull over them', A, rewritten, V2R, false, 'conflict', 1],
    ['the ancestor bytes while the remote changed: pulled', A, rewritten, V2R, true, 'pull', 1],
    ['other bytes, the remote unchanged: pushed', A, rewritten, V1R, false, 'push', 1],
    ['the ancestor bytes, the remote unchanged: nothing to do (the new ctime is agreed)', A, rewritten, V1R, true, 'none', 1],
    ['no hash in the ancestor, the remote changed: a conflict, nothing read', { l: C1, r: V1R }, rewritten, V2R, true, 'conflict', 0],
    ['no hash in the ancestor, the remote unchanged: pushed, nothing read', { l: C1, r: V1R }, rewritten, V1R, true, 'push', 0],
    ['an ancestor from before ctimes were kept: as before (pulled, nothing read)', { l: V1L, r: V1R, h: 'hash-of-v1' }, rewritten, V2R, false, 'pull', 0],
    ['the ancestor bytes, deleted remotely: deleted here too', A, rewritten, undefined, true, 'delete-local', 1],
    ['other bytes, deleted remotely: the local change wins', A, rewritten, undefined, false, 'push', 1],
  ])('%s', (_name, a, l, r, holds, want, asked) => {
    expect(decide(a, l, r, holds)).toEqual({ action: want, asked });
  });
});

describe('the shape of the tree', () => {
  const run = (rows: Record<string, [Agreed | undefined, Side, Side]>, own?: Parameters<typeof classify>[4]): Record<string, Action> => {
    const out = classify(Object.keys(rows), (p) => rows[p][0], (p) => rows[p][1], (p) => rows[p][2], own);
    return Object.fromEntries([...out].map(([k, v]) => [k, v.action]));
  };
  const AD: Agreed = { l: d(), r: d() };
  const AF: Agreed = { l: V1L, r: V1R };

  test('a folder deleted remotely while a file was added inside it locally is sent again', () => {
    expect(run({ dir: [AD, d(), undefined], 'dir/old': [AF, V1L, undefined], 'dir/new': [undefined, V2L, undefined] })).toEqual({ dir: 'push', 'dir/old': 'delete-local', 'dir/new': 'push' });
  });

  test('a folder deleted locally while the remote added inside it is fetched again', () => {
    expect(run({ dir: [AD, undefined, d()], 'dir/old': [AF, undefined, V1R], 'dir/new': [undefined, undefined, V2R] })).toEqual({ dir: 'pull', 'dir/old': 'delete-remote', 'dir/new': 'pull' });
  });

  test('a folder replaced by a file locally while the remote changed inside it: conflict, nothing below moves', () => {
    expect(run({ x: [AD, V2L, d()], 'x/in': [AF, undefined, V2R] })).toEqual({ x: 'conflict', 'x/in': 'hold' });
  });

  test('a folder replaced by a file remotely, untouched locally: the file wins', () => {
    expect(run({ x: [AD, d(), V2R], 'x/in': [AF, V1L, undefined] })).toEqual({ x: 'pull', 'x/in': 'delete-local' });
  });

  test('ownership holds changes against the flow', () => {
    const own = { remoteOwns: (rel: string) => rel.startsWith('dist'), localOwns: (rel: string) => rel.startsWith('src') };
    expect(run({ 'dist/a': [AF, V2L, V1R], 'dist/b': [AF, V1L, V2R], 'src/a': [AF, V1L, V2R], 'src/b': [AF, V2L, V1R] }, own))
      .toEqual({ 'dist/a': 'hold', 'dist/b': 'pull', 'src/a': 'hold', 'src/b': 'push' });
  });

  test('tree order keeps a subtree together', () => {
    expect(treeOrder(['a-b', 'a/b', 'a', 'a/b/c', 'a.b'])).toEqual(['a', 'a/b', 'a/b/c', 'a-b', 'a.b']);
  });
});

/**
 * The simple ignore matcher (plain names with * and ?) must answer exactly as the `ignore` package,
 * which it replaces for such pattern sets: a wrong "not ignored" would let a full pass delete an
 * ignored remote file. Compared on every path of a generated tree, folders and files, odd cases included.
 */
import ignore from 'ignore';
import { DEFAULT_IGNORES, simpleMatcher } from '../sync/engine/ignore';
import { rng } from '../bench/tree';

const NAMES = ['.git', '.GIT', '.hg', '.svn', '.DS_Store', '.ds_store', 'a.swp', '.a.swp', '.a.SWX', 'x~', '~', '.#x', '#x', 'node_modules', 'Node_Modules', 'build', 'b.log', 'b.LOG', 'log', 'a.b', 'ab', 'a', 'src', 'x.y.z', '.env', 'env', 'cache.tmp', 'tmp', '..x', 'a+b', 'a%b', 'a=b', 'a,b', 'a:b', 'a@b', 'a-b', 'x.pyc', 'q1', 'q12'];

function paths(seed: number, n: number): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const depth = 1 + Math.floor(r() * 4);
    out.push(Array.from({ length: depth }, () => NAMES[Math.floor(r() * NAMES.length)]).join('/'));
  }
  return out;
}

const SETS: readonly (readonly string[])[] = [
  DEFAULT_IGNORES,
  [...DEFAULT_IGNORES, 'node_modules/', '*.log', 'build', 'cache.*', 'q?', '*.py[c]'.replace('[c]', 'c'), 'tmp/', 'a.b'],
  ['*'],
  ['*/'],
  ['env', '.env/', 'a?b'],
];

describe('simpleMatcher', () => {
  test.each(SETS.map((s, i) => [i, s] as const))('pattern set %i answers as the ignore package on 4,000 paths', (_i, set) => {
    const fast = simpleMatcher(set);
    expect(fast).toBeDefined();
    const pkg = ignore().add([...set]);
    let checked = 0;
    for (const p of paths(7 + _i, 2000)) {
      for (const isDir of [false, true]) {
        const want = pkg.ignores(isDir ? `${p}/` : p);
        if (fast?.(p, isDir) !== want) throw new Error(`'${p}'${isDir ? ' (folder)' : ''} with [${set.join(' ')}]: package says ${want}`);
        checked++;
      }
    }
    expect(checked).toBe(4000);
  });

  test('other patterns are left to the package', () => {
    for (const p of ['!keep', 'a/b', '/root', '**/x', 'a/**', '[ab]', 'x\\ ', ' x', '#x', '.', '..', 'a b']) expect(simpleMatcher([p])).toBeUndefined();
  });
});

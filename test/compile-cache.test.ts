/**
 * Compiled code kept between runs (sync/cli/compile-cache.ts), in real node processes: the second run
 * reads the cache and writes nothing; a changed module (even of the same length) runs its new code;
 * a garbled or cut cache file, or a cache folder that cannot be made, only means no cache; modules
 * loaded through it keep require, __dirname and their line numbers.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import ts from 'typescript';
import { readCacheFile } from '../sync/cli/compile-cache';
import { tempDir } from './support/trees';

const NATIVE = typeof (Module as unknown as { enableCompileCache?: unknown }).enableCompileCache === 'function';
let dir: string;
let cache: string;

beforeAll(() => {
  dir = tempDir('compile-cache');
  cache = path.join(dir, 'cache');
  const src = fs.readFileSync(path.join(__dirname, '..', 'sync', 'cli', 'compile-cache.ts'), 'utf8');
  fs.writeFileSync(path.join(dir, 'cc.js'), ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText);
  fs.mkdirSync(path.join(dir, 'mods'));
  fs.writeFileSync(path.join(dir, 'mods', 'a.js'), "const b = require('./b.js');\nmodule.exports = () => `a+${b()} in ${require('node:path').basename(__dirname)} ${require.resolve('./b.js') === __dirname + '/b.js'}`;\n");
  writeB('B1');
  fs.writeFileSync(path.join(dir, 'mods', 'c.js'), "\n\nmodule.exports = () => new Error('here').stack.split('\\n')[1];\n");
  fs.writeFileSync(path.join(dir, 'main.js'), "require('./cc.js').enableCompileCache(process.env.CACHE);\nconsole.log(require('./mods/a.js')(), require('./mods/c.js')());\n");
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeB(v: string): void {
  fs.writeFileSync(path.join(dir, 'mods', 'b.js'), `module.exports = () => '${v}';\n`);
}

function run(env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [path.join(dir, 'main.js')], { encoding: 'utf8', env: { ...process.env, CACHE: cache, KUBEDEV_NO_COMPILE_CACHE: '', NODE_DISABLE_COMPILE_CACHE: '', ...env } });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.trim();
}

function cacheFile(): string {
  const files = fs.readdirSync(cache);
  expect(files).toHaveLength(1);
  return path.join(cache, files[0]);
}

test('written once, then read; a changed module runs its new code; a garbled or cut file is rewritten', () => {
  const first = run();
  expect(first).toMatch(new RegExp(`^a\\+B1 in mods true +at .*${path.join(dir, 'mods', 'c.js')}:3:\\d+\\)$`));
  if (NATIVE) {
    // Node >= 22.1 keeps the cache itself, in kubedev's folder.
    expect(fs.readdirSync(cache).length).toBeGreaterThan(0);
    return;
  }
  const file = cacheFile();
  expect(path.basename(file)).toBe(`code-${process.version}-${process.arch}.bin`);
  expect(readCacheFile(file).size).toBe(3);
  const written = fs.statSync(file).mtimeMs;
  expect(run()).toBe(first);
  expect(fs.statSync(file).mtimeMs).toBe(written); // all found: nothing written
  writeB('B2'); // same length, other text: never the old code
  expect(run()).toBe(first.replace('B1', 'B2'));
  // The new b.js replaces the old one: rebuilds never grow the file (the first format kept both, and
  // after some weeks every run read 11.8 MB of stale entries).
  expect([...readCacheFile(file).keys()].sort()).toEqual(['a.js', 'b.js', 'c.js'].map((m) => path.join(dir, 'mods', m)));
  for (let i = 3; i <= 6; i++) {
    writeB(`B${i}`);
    expect(run()).toBe(first.replace('B1', `B${i}`));
  }
  expect(readCacheFile(file).size).toBe(3);
  // Another command's modules (d.js, loaded only by other.js) stay; once their file is gone, they go.
  fs.writeFileSync(path.join(dir, 'mods', 'd.js'), "module.exports = 'd';\n");
  fs.writeFileSync(path.join(dir, 'other.js'), "require('./cc.js').enableCompileCache(process.env.CACHE);\nconsole.log(require('./mods/d.js'));\n");
  expect(spawnSync(process.execPath, [path.join(dir, 'other.js')], { encoding: 'utf8', env: { ...process.env, CACHE: cache, KUBEDEV_NO_COMPILE_CACHE: '', NODE_DISABLE_COMPILE_CACHE: '' } }).stdout).toBe('d\n');
  expect(readCacheFile(file).size).toBe(4);
  writeB('B2');
  expect(run()).toBe(first.replace('B1', 'B2'));
  expect(readCacheFile(file).size).toBe(4);
  fs.rmSync(path.join(dir, 'mods', 'd.js'));
  writeB('B7');
  expect(run()).toBe(first.replace('B1', 'B7'));
  expect(readCacheFile(file).size).toBe(3);
  writeB('B2');
  expect(run()).toBe(first.replace('B1', 'B2'));
  fs.writeFileSync(file, 'garbage');
  expect(run()).toBe(first.replace('B1', 'B2'));
  expect(readCacheFile(file).size).toBe(3);
  fs.truncateSync(file, fs.statSync(file).size - 10);
  expect(readCacheFile(file).size).toBe(0);
  expect(run()).toBe(first.replace('B1', 'B2'));
  expect(readCacheFile(file).size).toBe(3);
  expect(fs.readdirSync(cache)).toHaveLength(1); // no temporary file left behind
});

test('a cache folder that cannot be made, or the cache turned off, changes nothing but speed', () => {
  const blocked = path.join(dir, 'a-file');
  fs.writeFileSync(blocked, '');
  const r = spawnSync(process.execPath, [path.join(dir, 'main.js')], { encoding: 'utf8', env: { ...process.env, CACHE: path.join(blocked, 'cache') } });
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^a\+B\d in mods true/);
  const off = path.join(dir, 'off');
  expect(run({ CACHE: off, KUBEDEV_NO_COMPILE_CACHE: '1' })).toMatch(/^a\+B\d/);
  expect(fs.existsSync(off)).toBe(false);
});

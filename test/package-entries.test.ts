/**
 * The package's entry points, checked fast against build/ (the full proof, with the packed tarball
 * installed into fresh projects, is test/package/, `npm run test:package`): every exports target
 * exists, and each entry loads only its own engine.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

/** The engine packages a fresh Node process loads when it requires `file`. */
function enginesLoadedBy(file: string): string[] {
  const script = `require(${JSON.stringify(file)});
    const seen = new Set();
    for (const f of Object.keys(require.cache)) {
      const m = /node_modules\\/((?:@pulumi\\/)?[^/]+)\\//.exec(f);
      if (m && /^(@pulumi\\/|cdk8s|constructs$)/.test(m[1])) seen.add(m[1]);
    }
    process.stdout.write(JSON.stringify([...seen].sort()));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' }));
}

describe('package entry points', () => {
  test('every exports target, main, types and bin exist in the build', () => {
    const targets: string[] = [manifest.main, manifest.types, ...Object.values(manifest.bin as Record<string, string>)];
    for (const entry of Object.values(manifest.exports as Record<string, string | Record<string, string>>)) {
      targets.push(...(typeof entry === 'string' ? [entry] : Object.values(entry)));
    }
    expect(targets.filter((t) => !fs.existsSync(path.join(ROOT, t)))).toEqual([]);
  });

  test.each([
    ['kubedev', '.', []],
    ['kubedev/cdk8s', './cdk8s', ['cdk8s', 'cdk8s-plus-28', 'constructs']],
    ['kubedev/pulumi', './pulumi', ['@pulumi/kubernetes', '@pulumi/pulumi']],
  ])('%s loads only its own engine', (_name, key, engines) => {
    expect(enginesLoadedBy(path.join(ROOT, manifest.exports[key].default))).toEqual(engines);
  });

  test('the command loads no engine', () => {
    expect(enginesLoadedBy(path.join(ROOT, 'build', 'sync', 'cli', 'main.js'))).toEqual([]);
  });
});

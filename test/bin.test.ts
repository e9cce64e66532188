/**
 * The installed command: bin/kubedev.js runs through its shebang and loads the compiled CLI from
 * build/ (made by `npm ci` through the `prepare` script, or `npm run build`).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '..', 'bin', 'kubedev.js');

describe('bin/kubedev.js', () => {
  beforeAll(() => {
    if (!fs.existsSync(path.resolve(__dirname, '..', 'build', 'sync', 'cli', 'main.js'))) {
      throw new Error("build/sync/cli/main.js is missing: run 'npm run build' (npm ci does it through 'prepare')");
    }
  });

  test('is executable and prints help with every command', () => {
    expect(fs.statSync(BIN).mode & 0o111).not.toBe(0);
    const help = execFileSync(BIN, ['--help'], { encoding: 'utf8' });
    for (const command of ['sync', 'keys', 'up']) expect(help).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  test('prints the package version', () => {
    const { version } = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'package.json'), 'utf8'));
    expect(execFileSync(BIN, ['--version'], { encoding: 'utf8' }).trim()).toBe(version);
  });

  test('bad usage exits 2 with a message, no stack trace', () => {
    const r = spawnSync(BIN, ['sync', '--local', '.'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^kubedev: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

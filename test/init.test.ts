/**
 * `kubedev init`: the files of each engine, an existing file never replaced, and hostile input
 * (bad or missing --engine, a --dir that is a file or not writable, names and owners that would
 * break the generated code) refused with exit 2 naming the flag, before anything is written.
 * The generated projects' own install, type check and synth / mocked run are in test/package/.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../sync/cli/main';

let tmp: string;
let stderr: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-init-'));
  stderr = '';
  jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
});

afterEach(() => {
  jest.restoreAllMocks();
  fs.chmodSync(tmp, 0o755);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function listing(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

describe('kubedev init', () => {
  test('--engine cdk8s writes a cdk8s app named after its folder', async () => {
    const dir = path.join(tmp, 'My Shop');
    expect(await main(['init', '--engine', 'cdk8s', '--dir', dir, '--owner', 'alice@example.com'])).toBe(0);
    expect(listing(dir)).toEqual(['.gitignore', 'cdk8s.yaml', 'main.ts', 'package.json', 'tsconfig.json']);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const own = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'package.json'), 'utf8'));
    expect(pkg.name).toBe('my-shop');
    expect(pkg.dependencies).toEqual({ kubedev: `^${own.version}`, cdk8s: own.devDependencies.cdk8s, 'cdk8s-plus-28': own.devDependencies['cdk8s-plus-28'], constructs: own.devDependencies.constructs });
    expect(pkg.scripts.synth).toBe('tsx main.ts');
    const main_ = fs.readFileSync(path.join(dir, 'main.ts'), 'utf8');
    expect(main_).toContain("from 'kubedev/cdk8s'");
    expect(main_).toContain("owner: 'alice@example.com'");
    expect(main_).toContain("namespace: 'team-my-shop'");
    expect(stderr).toContain('wrote package.json, tsconfig.json, cdk8s.yaml, .gitignore, main.ts');
  });

  test('--engine pulumi writes a program, its stack config and a mocked run', async () => {
    expect(await main(['init', '--engine', 'pulumi', '--dir', tmp, '--name', 'platform', '--team', 'web'])).toBe(0);
    expect(listing(tmp)).toEqual(['.gitignore', 'Pulumi.dev.yaml', 'Pulumi.yaml', 'index.ts', 'mocks.ts', 'package.json', 'tsconfig.json']);
    expect(fs.readFileSync(path.join(tmp, 'Pulumi.yaml'), 'utf8')).toMatch(/^name: platform\n/);
    expect(fs.readFileSync(path.join(tmp, 'Pulumi.dev.yaml'), 'utf8')).toBe('config:\n  platform:namespace: team-web\n  platform:owner: developer@example.com\n');
    expect(fs.readFileSync(path.join(tmp, 'index.ts'), 'utf8')).toContain("from 'kubedev/pulumi'");
  });

  test('never replaces an existing file; says which were kept and what to add to a kept package.json', async () => {
    fs.writeFileSync(path.join(tmp, 'package.json'), '{"name":"mine"}\n');
    fs.writeFileSync(path.join(tmp, 'main.ts'), '// mine\n');
    fs.mkdirSync(path.join(tmp, 'cdk8s.yaml'));
    expect(await main(['init', '--engine', 'cdk8s', '--dir', tmp])).toBe(0);
    expect(fs.readFileSync(path.join(tmp, 'package.json'), 'utf8')).toBe('{"name":"mine"}\n');
    expect(fs.readFileSync(path.join(tmp, 'main.ts'), 'utf8')).toBe('// mine\n');
    expect(fs.statSync(path.join(tmp, 'cdk8s.yaml')).isDirectory()).toBe(true);
    expect(stderr).toContain('wrote tsconfig.json, .gitignore\n');
    expect(stderr).toContain('kept package.json, cdk8s.yaml, main.ts (already there; not changed)');
    expect(stderr).toContain('your package.json was kept: add kubedev');
    // A second run keeps everything, including what the first wrote.
    stderr = '';
    const before = fs.readFileSync(path.join(tmp, 'tsconfig.json'), 'utf8');
    fs.writeFileSync(path.join(tmp, 'tsconfig.json'), before + ' ');
    expect(await main(['init', '--engine', 'cdk8s', '--dir', tmp])).toBe(0);
    expect(fs.readFileSync(path.join(tmp, 'tsconfig.json'), 'utf8')).toBe(before + ' ');
    expect(stderr).not.toContain('wrote');
  });

  test.each([
    [['--engine', 'helm'], /option '--engine <engine>' argument 'helm' is invalid\. Allowed choices are cdk8s, pulumi\./],
    [[], /required option '--engine <engine>' not specified/],
    [['--engine', 'cdk8s', '--name', 'Bad_Name'], /--name must be a lowercase DNS label of at most 50 characters \(got 'Bad_Name'\)/],
    [['--engine', 'cdk8s', '--team', 'a-team-name-that-is-too-long'], /--team must be a lowercase DNS label of at most 20 characters/],
    [['--engine', 'pulumi', '--owner', "x'); process.exit(1); ('"], /--owner must be a user name or e-mail address/],
    [['--engine', 'pulumi', '--owner', 'a\nb: c'], /--owner must be a user name or e-mail address/],
  ])('bad usage %j: exit 2 naming the flag, nothing written', async (args, message) => {
    const dir = path.join(tmp, 'project');
    expect(await main(['init', '--dir', dir, ...args])).toBe(2);
    expect(stderr).toMatch(message);
    expect(listing(dir)).toEqual([]);
  });

  test('--dir naming a file: exit 2 naming --dir', async () => {
    const file = path.join(tmp, 'file');
    fs.writeFileSync(file, 'x');
    expect(await main(['init', '--engine', 'cdk8s', '--dir', file])).toBe(2);
    expect(stderr).toContain(`kubedev: --dir '${file}': it is not a folder. Name a folder you can write to.`);
    expect(await main(['init', '--engine', 'cdk8s', '--dir', path.join(file, 'sub')])).toBe(2);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });

  test('an unwritable folder: exit 2 naming --dir, nothing written', async () => {
    // root writes through file modes; /sys refuses even root.
    const root = process.getuid?.() === 0;
    if (root && !fs.existsSync('/sys/kernel')) return;
    const dir = root ? '/sys/kernel' : tmp;
    if (!root) fs.chmodSync(tmp, 0o555);
    for (const target of [dir, path.join(dir, 'kubedev-init')]) {
      stderr = '';
      expect(await main(['init', '--engine', 'pulumi', '--dir', target])).toBe(2);
      expect(stderr).toMatch(new RegExp(`^kubedev: --dir '${target}': it is not writable \\((EACCES|EPERM|EROFS)\\)\\. Name a folder you can write to\\.\\n$`));
    }
    expect(fs.existsSync(path.join(dir, 'package.json'))).toBe(false);
  });
});

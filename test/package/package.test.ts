/**
 * The package as users get it: `npm pack`, the tarball installed into a fresh project with npm, and
 * there a CommonJS and two ESM TypeScript consumers (nodenext and bundler resolution, plus the older
 * node10 resolution) of `kubedev` and `kubedev/cdk8s`, a Pulumi program on `kubedev/pulumi` under
 * mocks, and the `kubedev` command. `npm run test:package`; see jest.package.config.js.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Packed, consumerTypescript, lastJson, node, npmInstall, pack, peerSpec, removeTemp, report, run, tempDir, testedVersion, writeFiles } from './support';

const FIXTURES = path.join(__dirname, 'fixtures');
const ENGINES = ['cdk8s', 'cdk8s-plus-28', 'constructs', '@pulumi/pulumi', '@pulumi/kubernetes'];

/** The consumer variants: folder -> its package.json "type" and TypeScript module settings. */
const VARIANTS: Record<string, { type: 'commonjs' | 'module'; module: string; moduleResolution: string }> = {
  'cjs-nodenext': { type: 'commonjs', module: 'nodenext', moduleResolution: 'nodenext' },
  'cjs-node10': { type: 'commonjs', module: 'commonjs', moduleResolution: 'node10' },
  'esm-nodenext': { type: 'module', module: 'nodenext', moduleResolution: 'nodenext' },
  'esm-bundler': { type: 'module', module: 'preserve', moduleResolution: 'bundler' },
};

function tsconfig(variant: { module: string; moduleResolution: string }): object {
  return {
    compilerOptions: {
      target: 'ES2022', module: variant.module, moduleResolution: variant.moduleResolution, strict: true, esModuleInterop: true,
      skipLibCheck: true, types: ['node'], outDir: 'out', rootDir: '.',
      // TypeScript 6 deprecates node10 resolution; 5 knows no '6.0' here.
      ...(consumerTypescript().startsWith('5.') ? {} : { ignoreDeprecations: '6.0' }),
    },
    files: ['app.ts'],
  };
}

let work: string;
let packed: Packed;
let consumer: string;

beforeAll(() => {
  work = tempDir('package');
  packed = pack(work);
  report(`npm pack ${packed.ms} ms: ${packed.size} bytes, ${packed.unpackedSize} unpacked, ${packed.files.length} files`);
  consumer = path.join(work, 'consumer');
  const deps = {
    ...Object.fromEntries(ENGINES.map((n) => [n, peerSpec(n)])),
    ...Object.fromEntries(['yaml', 'kubernetes-models', '@types/node'].map((n) => [n, testedVersion(n)])),
    typescript: consumerTypescript(),
  };
  writeFiles(consumer, { 'package.json': { name: 'consumer', version: '1.0.0', private: true, dependencies: { kubedev: `file:${packed.tarball}`, ...deps } } });
  const installed = npmInstall(consumer);
  const versions = ENGINES.map((n) => `${n}@${JSON.parse(fs.readFileSync(path.join(consumer, 'node_modules', n, 'package.json'), 'utf8')).version}`);
  report(`npm install of kubedev and its peers (${versions.join(', ')}) into a fresh project: ${installed.ms} ms`);
  for (const [name, variant] of Object.entries(VARIANTS)) {
    writeFiles(path.join(consumer, name), {
      'package.json': { type: variant.type },
      'tsconfig.json': tsconfig(variant),
      'app.ts': fs.readFileSync(path.join(FIXTURES, 'app.ts'), 'utf8'),
    });
  }
  writeFiles(path.join(consumer, 'pulumi'), {
    'package.json': { type: 'commonjs' },
    'tsconfig.json': { ...tsconfig(VARIANTS['cjs-nodenext']), files: ['pulumi.ts'] },
    'pulumi.ts': fs.readFileSync(path.join(FIXTURES, 'pulumi.ts'), 'utf8'),
  });
});

afterAll(() => removeTemp(work));

describe('the tarball', () => {
  test('holds the compiled package, its declarations and maps, the command and the sidecar; no sources or tests', () => {
    const files = packed.files;
    expect(packed.warnings).toEqual([]);
    for (const f of ['package.json', 'README.md', 'bin/kubedev.js', 'build/sync/cli/main.js', 'sync/sidecar/Containerfile']) expect(files).toContain(f);
    for (const entry of ['lib', 'constructs', 'stacks']) {
      for (const ext of ['js', 'd.ts', 'js.map']) expect(files).toContain(`build/${entry}/index.${ext}`);
    }
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => /^(test|e2e|bench|examples|build\/(test|e2e|bench|examples|stacks\/team-namespaces))\//.test(f))).toEqual([]);
    const manifest = JSON.parse(fs.readFileSync(path.join(consumer, 'node_modules', 'kubedev', 'package.json'), 'utf8'));
    expect(manifest.private).toBeUndefined();
    expect(Object.keys(manifest.dependencies).filter((d) => ENGINES.includes(d))).toEqual([]);
    expect(Object.keys(manifest.peerDependencies).sort()).toEqual([...ENGINES].sort());
  });

  test('one copy of constructs and of @pulumi/pulumi in the consumer tree', () => {
    for (const name of ['constructs', '@pulumi/pulumi', 'cdk8s']) {
      const r = run('npm', ['ls', name, '--all', '--parseable'], consumer);
      const copies = new Set(r.stdout.trim().split('\n').filter(Boolean));
      expect([name, [...copies]]).toEqual([name, [path.join(consumer, 'node_modules', name)]]);
    }
  });
});

describe.each(Object.keys(VARIANTS))('a cdk8s consumer (%s)', (name) => {
  test('type-checks, builds, synthesizes valid objects, and does not load Pulumi', () => {
    const dir = path.join(consumer, name);
    const built = node([path.join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir);
    const ran = node([path.join('out', 'app.js')], dir);
    report(`${name}: tsc ${built.ms} ms, synth ${ran.ms} ms`);
    const summary = lastJson<{ objects: string[]; attached: string[]; problems: string[]; early: string[]; invalid: string; kubedevLoaded: boolean; pulumiLoaded: number }>(ran);
    expect(summary.problems).toEqual([]);
    expect(summary.objects).toEqual(expect.arrayContaining(['Namespace/team-web', 'StatefulSet/api', 'StatefulSet/shop-dev', 'Deployment/shop', 'Role/web-developer']));
    expect(summary.attached.sort()).toEqual(['api', 'shop-dev']);
    expect(summary.early).toEqual([expect.stringMatching(/^DevEnvironment 'Not A Name': /)]);
    expect(summary.invalid).toContain(summary.early[0]);
    expect(summary.kubedevLoaded).toBe(true);
    expect(summary.pulumiLoaded).toBe(0);
  });
});

describe('a Pulumi consumer', () => {
  test('type-checks and runs under setMocks without loading cdk8s or constructs', () => {
    const dir = path.join(consumer, 'pulumi');
    node([path.join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir);
    const summary = lastJson<{ registered: string[]; pod: string; invalid: string; cdk8sLoaded: number }>(node([path.join('out', 'pulumi.js')], dir));
    expect(summary.invalid).toMatch(/^true: kubedev:index:DevEnvironment 'bad': 1 invalid input property:\n {2}- name: /);
    expect(summary.registered).toEqual(expect.arrayContaining([
      'kubedev:index:TeamNamespace:web', 'kubernetes:core/v1:Namespace:web-namespace',
      'kubedev:index:DevEnvironment:api', 'kubernetes:apps/v1:StatefulSet:api-statefulset',
    ]));
    expect(summary.pod).toBe('api-0');
    expect(summary.cdk8sLoaded).toBe(0);
  });
});

describe('the kubedev command', () => {
  test('npx kubedev --help, --version and sync --help work from the installed package', () => {
    const help = run('npx', ['--no-install', 'kubedev', '--help'], consumer).stdout;
    for (const command of ['sync', 'keys', 'up', 'init']) expect(help).toMatch(new RegExp(`^  ${command} `, 'm'));
    expect(run('npx', ['--no-install', 'kubedev', '--version'], consumer).stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
    expect(run('npx', ['--no-install', 'kubedev', 'sync', '--help'], consumer).stdout).toMatch(/--known-hosts/);
    const bad = run('npx', ['--no-install', 'kubedev', 'sync', '--local', '.'], consumer, { expect: 2 });
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('kubedev alone, no engine installed', () => {
  test('the model loads and the command runs', () => {
    const dir = path.join(work, 'alone');
    writeFiles(dir, { 'package.json': { name: 'alone', version: '1.0.0', private: true } });
    const installed = npmInstall(dir, [packed.tarball]);
    report(`npm install of kubedev alone: ${installed.ms} ms`);
    for (const engine of ENGINES) expect(fs.existsSync(path.join(dir, 'node_modules', engine))).toBe(false);
    const model = node(['-e', "const k = require('kubedev'); process.stdout.write(JSON.stringify(k.renderDevEnvironment({ name: 'api', namespace: 'ns', owner: 'a@example.com', image: 'node:22' }).map((o) => o.kind)))"], dir);
    expect(JSON.parse(model.stdout)).toContain('StatefulSet');
    expect(run('npx', ['--no-install', 'kubedev', 'sync', '--help'], dir).stdout).toMatch(/--known-hosts/);
    const engineless = node(['-e', "require('kubedev/cdk8s')"], dir, { expect: 1 });
    expect(engineless.stderr).toMatch(/Cannot find module '(cdk8s|constructs|cdk8s-plus-28)'/);
  });
});

describe('kubedev init', () => {
  test.each(['cdk8s', 'pulumi'])('--engine %s: the project installs the tarball, type-checks and runs with no edits', (engine) => {
    const dir = path.join(work, `init-${engine}`);
    run('npx', ['--no-install', 'kubedev', 'init', '--engine', engine, '--dir', dir, '--owner', 'alice@example.com'], consumer);
    const installed = npmInstall(dir, [packed.tarball]);
    const tested = run('npm', ['test'], dir);
    report(`kubedev init --engine ${engine}: npm install ${installed.ms} ms, npm test ${tested.ms} ms`);
    if (engine === 'cdk8s') {
      const files = fs.readdirSync(path.join(dir, 'dist')).map((f) => path.join(dir, 'dist', f));
      const summary = lastJson<{ objects: string[]; attached: string[]; problems: string[] }>(node([path.join(FIXTURES, 'validate.cjs'), ...files], consumer));
      expect(summary.problems).toEqual([]);
      expect(summary.objects).toEqual(expect.arrayContaining(['Namespace/team-init-cdk8s', 'StatefulSet/dev', 'Role/init-cdk8s-attach-alice-example-com']));
      expect(summary.attached).toEqual(['dev']);
    } else {
      expect(tested.stdout).toMatch(/^\d+ resources, dev pod dev-0:$/m);
      for (const r of ['kubedev:index:TeamNamespace init-pulumi', 'kubernetes:core/v1:Namespace init-pulumi-namespace', 'kubedev:index:DevEnvironment dev', 'kubernetes:apps/v1:StatefulSet dev-statefulset']) {
        expect(tested.stdout).toContain(`  ${r}\n`);
      }
    }
  });
});

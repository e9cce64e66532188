/**
 * The files `kubedev init` writes, per engine, as plain text. Versions come from kubedev's own
 * package.json: the engines and tools are pinned to the versions this release was tested with.
 */

export type Engine = 'cdk8s' | 'pulumi';
export const ENGINES: readonly Engine[] = ['cdk8s', 'pulumi'];

/** What the templates are filled with. */
export interface TemplateValues {
  /** npm package name and Pulumi project name (a DNS label). */
  readonly project: string;
  /** The team, and its namespace `team-<team>`. */
  readonly team: string;
  /** The developer who owns the sample environment, as the cluster authenticates them. */
  readonly owner: string;
  /** kubedev's version (the dependency is `^version`). */
  readonly kubedevVersion: string;
  /** Exact versions of the other packages the project depends on. */
  readonly versions: Readonly<Record<string, string>>;
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** The packages each engine's project depends on; their versions come from kubedev's package.json. */
const PACKAGES: Readonly<Record<Engine, { readonly dependencies: readonly string[]; readonly devDependencies: readonly string[] }>> = {
  cdk8s: { dependencies: ['cdk8s', 'cdk8s-plus-28', 'constructs'], devDependencies: ['@types/node', 'tsx', 'typescript'] },
  pulumi: { dependencies: ['@pulumi/kubernetes', '@pulumi/pulumi'], devDependencies: ['@types/node', 'tsx', 'typescript', 'yaml'] },
};

/** Every package an engine's project needs a version of. */
export const TEMPLATE_PACKAGES: Readonly<Record<Engine, readonly string[]>> = {
  cdk8s: [...PACKAGES.cdk8s.dependencies, ...PACKAGES.cdk8s.devDependencies],
  pulumi: [...PACKAGES.pulumi.dependencies, ...PACKAGES.pulumi.devDependencies],
};

function pick(v: TemplateValues, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, v.versions[n]]));
}

/** The project's package.json: `npm test` type-checks, then runs the `run` script (synth, or the mocked run). */
function manifest(v: TemplateValues, engine: Engine, run: [name: string, command: string], extra: Record<string, string> = {}): string {
  const [name, command] = run;
  return json({
    name: v.project,
    version: '0.1.0',
    private: true,
    ...extra,
    scripts: { [name]: command, typecheck: 'tsc --noEmit', test: `npm run typecheck && npm run ${name}` },
    dependencies: { kubedev: `^${v.kubedevVersion}`, ...pick(v, PACKAGES[engine].dependencies) },
    devDependencies: pick(v, PACKAGES[engine].devDependencies),
  });
}

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'nodenext',
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  },
};

function cdk8sFiles(v: TemplateValues): Record<string, string> {
  const namespace = `team-${v.team}`;
  return {
    'package.json': manifest(v, 'cdk8s', ['synth', 'tsx main.ts']),
    'tsconfig.json': json({ ...TSCONFIG, include: ['*.ts'] }),
    'cdk8s.yaml': 'language: typescript\napp: npx tsx main.ts\noutput: dist\n',
    '.gitignore': 'node_modules/\ndist/\n',
    'main.ts': `/**
 * The team's namespace and one development environment. \`npm run synth\` writes dist/*.k8s.yaml;
 * then: kubectl apply -f dist/ && npx kubedev keys --env dist/${namespace}.k8s.yaml --name dev --apply
 * && npx kubedev up --env dist/${namespace}.k8s.yaml --name dev
 */
import { App, Chart } from 'cdk8s';
import { DevEnvironment, TeamNamespace } from 'kubedev/cdk8s';

const app = new App({ outdir: 'dist' });
const chart = new Chart(app, '${namespace}', { namespace: '${namespace}' });

const team = new TeamNamespace(chart, 'team', {
  team: '${v.team}',
  namespace: '${namespace}',
  members: [{ user: '${v.owner}', role: 'developer' }],
});

// Each developer's environments live in a namespace of their own (personal isolation, the default).
const dev = new DevEnvironment(chart, 'dev', {
  name: 'dev',
  namespace: team.namespaceFor('${v.owner}'),
  owner: '${v.owner}',
  image: 'node:22-bookworm',
  sync: [{ local: '.', remote: '/workspace', ignore: ['node_modules/', 'dist/'] }],
  ports: [{ name: 'http', port: 3000 }],
  caches: [{ path: '/workspace/node_modules', size: '5Gi' }],
});
team.addEnvironment(dev);

app.synth();
`,
  };
}

function pulumiFiles(v: TemplateValues): Record<string, string> {
  const namespace = `team-${v.team}`;
  return {
    'package.json': manifest(v, 'pulumi', ['mocks', 'tsx mocks.ts'], { main: 'index.ts' }),
    'tsconfig.json': json({ ...TSCONFIG, include: ['*.ts'] }),
    // tsx loads the TypeScript program (Pulumi's own ts-node is switched off).
    'Pulumi.yaml': `name: ${v.project}\ndescription: ${v.team}'s namespace and development environments (kubedev)\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n    nodeargs: --import tsx\n`,
    'Pulumi.dev.yaml': `config:\n  ${v.project}:namespace: ${namespace}\n  ${v.project}:owner: ${v.owner}\n`,
    '.gitignore': 'node_modules/\n',
    'index.ts': `/**
 * The team's namespace and one development environment. \`pulumi up\` creates them;
 * \`npm run mocks\` runs this program under Pulumi's mocks (no cluster, no Pulumi CLI).
 * Settings come from the stack's config (Pulumi.dev.yaml).
 */
import * as pulumi from '@pulumi/pulumi';
import { personalNamespaceName } from 'kubedev';
import { DevEnvironment, TeamNamespace } from 'kubedev/pulumi';

const config = new pulumi.Config();
const namespace = config.require('namespace');
const owner = config.require('owner');

// Each developer's environments live in a namespace of their own (personal isolation, the default),
// made by the TeamNamespace below.
const environment = {
  name: 'dev',
  namespace: personalNamespaceName('${v.team}', owner),
  owner,
  image: 'node:22-bookworm',
  sync: [{ local: '.', remote: '/workspace', ignore: ['node_modules/'] }],
  ports: [{ name: 'http', port: 3000 }],
  caches: [{ path: '/workspace/node_modules', size: '5Gi' }],
};

const team = new TeamNamespace('${v.team}', {
  team: '${v.team}',
  namespace,
  members: [{ user: owner, role: 'developer' }],
  environments: [environment],
});

const dev = new DevEnvironment('dev', environment, { dependsOn: [team] });

export const namespaceName = team.namespaceName;
export const podName = dev.podName;
`,
    'mocks.ts': `/**
 * Runs index.ts under Pulumi's mocks with the stack's config (PULUMI_STACK, default dev): every
 * resource is registered but nothing is created. Prints what \`pulumi up\` would create.
 */
import * as fs from 'node:fs';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';

async function main(): Promise<void> {
  const stack = process.env.PULUMI_STACK ?? 'dev';
  const project = (parse(fs.readFileSync('Pulumi.yaml', 'utf8')) as { name: string }).name;
  const config = (parse(fs.readFileSync(\`Pulumi.\${stack}.yaml\`, 'utf8')) as { config?: Record<string, unknown> }).config ?? {};
  pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])));

  const created: string[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        created.push(\`\${args.type} \${args.name}\`);
        return { id: args.custom ? \`\${args.name}-id\` : undefined, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    project,
    stack,
    false,
  );
  const program = await import('./index.js');
  const pod = await new Promise<string>((resolve) => program.podName.apply((p) => { resolve(p); return p; }));
  // Registrations arrive asynchronously: wait until no new one came for 50 ms.
  for (let seen = -1; seen !== created.length; ) {
    seen = created.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  process.stdout.write(\`\${created.length} resources, dev pod \${pod}:\\n\${created.map((c) => \`  \${c}\\n\`).join('')}\`);
}

main().catch((e: unknown) => {
  process.stderr.write(\`\${e instanceof Error ? e.message : String(e)}\\n\`);
  process.exitCode = 1;
});
`,
  };
}

/** The files of a new project for `engine`: relative path -> content. */
export function templateFiles(engine: Engine, values: TemplateValues): Record<string, string> {
  return engine === 'cdk8s' ? cdk8sFiles(values) : pulumiFiles(values);
}

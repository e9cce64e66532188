/**
 * The team-namespaces Pulumi program's logic: read and check the typed stack config, then create a
 * TeamNamespace per team and a DevEnvironment per environment it hosts. index.ts is the entry point.
 */
import * as pulumi from '@pulumi/pulumi';
import { AttachRecord } from '../../lib/attach';
import { DevEnvironmentSpec } from '../../lib/dev-environment';
import { TeamNamespaceSpec, personalNamespaces, teamEnvironments, teamNamespaceName } from '../../lib/team-namespace';
import { DevEnvironment } from '../dev-environment';
import { withoutStack } from '../kube';
import { TeamNamespace, teamNamespaceProblems } from '../team-namespace';

/** The config key (within the project's namespace) holding the teams. */
export const TEAMS_KEY = 'teams';

/** The stack config: `<project>:teams`, a list of team specs. */
export type TeamsConfig = readonly TeamNamespaceSpec[];

/** Fields a team may have; anything else in config is a typo. */
const TEAM_FIELDS = ['team', 'namespace', 'isolation', 'personalQuota', 'members', 'ci', 'quota', 'containerDefaults', 'network', 'podSecurity', 'environments', 'labels'];

/**
 * Reads `<project>:teams` and checks every team.
 * @throws pulumi.InputPropertiesError naming the config key and each property path (`teams[1].members[0].role`).
 */
export function readTeamsConfig(config: pulumi.Config): TeamNamespaceSpec[] {
  const key = `${config.name}:${TEAMS_KEY}`;
  const fail = (errors: { propertyPath: string; reason: string }[]) =>
    withoutStack(
      new pulumi.InputPropertiesError({
        message: `Stack config '${key}' is invalid (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n${errors.map((e) => `  - ${e.propertyPath}: ${e.reason}`).join('\n')}`,
        errors,
      }),
    );
  let raw: unknown;
  try {
    raw = config.getObject<unknown>(TEAMS_KEY);
  } catch (e) {
    throw fail([{ propertyPath: TEAMS_KEY, reason: `Config key '${key}' is not valid JSON/YAML (${(e as Error).message}). Write it as a YAML list under 'config:' in Pulumi.<stack>.yaml.` }]);
  }
  if (raw === undefined) {
    throw fail([{ propertyPath: TEAMS_KEY, reason: `Config key '${key}' is not set. Add a list of teams under 'config:' in Pulumi.<stack>.yaml (see Pulumi.dev.yaml).` }]);
  }
  if (!Array.isArray(raw) || raw.length === 0) {
    throw fail([{ propertyPath: TEAMS_KEY, reason: `Config key '${key}' must be a non-empty list of teams (got ${JSON.stringify(raw)}). Write e.g. [{ team: 'payments', members: [...] }].` }]);
  }
  const errors: { propertyPath: string; reason: string }[] = [];
  const teamNames = new Map<string, number>();
  const namespaces = new Map<string, number>();
  raw.forEach((t: unknown, i) => {
    const path = `${TEAMS_KEY}[${i}]`;
    if (t === null || typeof t !== 'object' || Array.isArray(t)) {
      errors.push({ propertyPath: path, reason: `Config key '${key}': team ${i} is not an object (got ${JSON.stringify(t)}). Write { team: 'name', members: [...] }.` });
      return;
    }
    for (const field of Object.keys(t)) {
      if (!TEAM_FIELDS.includes(field)) {
        const guess = TEAM_FIELDS.find((f) => f.startsWith(field.slice(0, 4)));
        errors.push({ propertyPath: `${path}.${field}`, reason: `Config key '${key}': team ${i} has an unknown field '${field}'.${guess ? ` Did you mean '${guess}'?` : ''} Fields are: ${TEAM_FIELDS.join(', ')}.` });
      }
    }
    const spec = t as TeamNamespaceSpec;
    for (const p of teamNamespaceProblems(spec, path)) errors.push({ propertyPath: p.path, reason: `Config key '${key}': ${p.message}` });
    const before = teamNames.get(spec.team);
    if (before !== undefined) errors.push({ propertyPath: `${path}.team`, reason: `Config key '${key}': teams ${before} and ${i} are both named '${spec.team}'. Give each team its own name.` });
    else teamNames.set(spec.team, i);
    const ns = teamNamespaceName(spec);
    const nsBefore = namespaces.get(ns);
    if (nsBefore !== undefined && before === undefined) errors.push({ propertyPath: `${path}.namespace`, reason: `Config key '${key}': teams ${nsBefore} and ${i} both use namespace '${ns}'. Give each team its own namespace.` });
    else namespaces.set(ns, i);
    // A personal namespace may not be another team's (or another team's member's) namespace either.
    if (before === undefined && nsBefore === undefined && teamNamespaceProblems(spec).length === 0) {
      for (const p of personalNamespaces(spec)) {
        const other = namespaces.get(p.name);
        if (other !== undefined && other !== i) errors.push({ propertyPath: `${path}.environments`, reason: `Config key '${key}': the personal namespace '${p.name}' of '${p.owner}' in team ${i} is also a namespace of team ${other}. Rename one of the teams (or its namespace).` });
        else namespaces.set(p.name, i);
      }
    }
  });
  if (errors.length > 0) throw fail(errors);
  return raw as TeamNamespaceSpec[];
}

export interface ProvisionedTeam {
  /** The team's name (and its component's Pulumi name). */
  readonly name: string;
  readonly team: TeamNamespace;
  /** Each environment's component, by Pulumi name. */
  readonly environments: readonly { readonly name: string; readonly component: DevEnvironment }[];
}

/** Pulumi name of an environment's component: `<team>-<env>` (environment names are unique per namespace only). */
export function environmentResourceName(team: string, env: DevEnvironmentSpec): string {
  return `${team}-${env.name}`;
}

/** Creates the components: one TeamNamespace per team, one DevEnvironment per hosted environment (after its team). */
export function provisionTeams(teams: TeamsConfig): ProvisionedTeam[] {
  return teams.map((spec) => {
    const team = new TeamNamespace(spec.team, spec);
    const environments = teamEnvironments(spec).map((env) => {
      const name = environmentResourceName(spec.team, env);
      return { name, component: new DevEnvironment(name, env, { dependsOn: [team] }) };
    });
    return { name: spec.team, team, environments };
  });
}

/** The stack outputs: namespace, personal namespaces (by owner) and CI ServiceAccounts per team, attach record per environment. */
export function stackOutputs(provisioned: readonly ProvisionedTeam[]): {
  namespaces: pulumi.Output<Record<string, string>>;
  personalNamespaces: pulumi.Output<Record<string, Record<string, string>>>;
  serviceAccounts: pulumi.Output<Record<string, string[]>>;
  environments: pulumi.Output<Record<string, AttachRecord>>;
} {
  const record = <T>(entries: [string, pulumi.Output<T>][]) =>
    pulumi.all(entries.map(([k, v]) => v.apply((x) => [k, x] as const))).apply((pairs) => Object.fromEntries(pairs) as Record<string, T>);
  return {
    namespaces: record(provisioned.map((p): [string, pulumi.Output<string>] => [p.name, p.team.namespaceName])),
    personalNamespaces: record(provisioned.map((p): [string, pulumi.Output<Record<string, string>>] => [p.name, p.team.personalNamespaces])),
    serviceAccounts: record(provisioned.map((p): [string, pulumi.Output<string[]>] => [p.name, p.team.serviceAccountNames])),
    environments: record(provisioned.flatMap((p) => p.environments.map((e): [string, pulumi.Output<AttachRecord>] => [e.name, e.component.attachRecord]))),
  };
}

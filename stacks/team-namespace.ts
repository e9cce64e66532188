/**
 * Pulumi ComponentResource `kubedev:index:TeamNamespace`: lib's renderTeamNamespace() output as
 * typed @pulumi/kubernetes resources, children `${name}-<role>` with { parent: this }, every
 * namespaced child depending on the Namespace.
 */
import * as pulumi from '@pulumi/pulumi';
import { KubeObject } from '../lib/k8s';
import { TeamNamespaceSpec, ownedPods, personalNamespaces, renderTeamNamespace, teamNamespaceName, validateTeamNamespaceAt } from '../lib/team-namespace';
import { childName, inputPropertiesError, kubeResource } from './kube';

export const TEAM_NAMESPACE_TYPE = 'kubedev:index:TeamNamespace';

/** The component's args: lib's spec, as plain values (they decide which resources exist). */
export type TeamNamespaceArgs = TeamNamespaceSpec;

/**
 * Every problem with its property path; an environment's own problems get the environment's
 * path plus the field they name (`environments[0].image`).
 * @param prefix prepended to every path (e.g. `teams[1]` for stack config).
 */
export function teamNamespaceProblems(args: TeamNamespaceArgs, prefix = ''): { path: string; message: string }[] {
  return validateTeamNamespaceAt(args).map(({ path, message }) => ({ path: prefix ? (path ? `${prefix}.${path}` : prefix) : path, message }));
}

/**
 * The children to create, in apply order: `{ name, object }`.
 * @throws pulumi.InputPropertiesError naming every invalid property.
 */
export function planTeamNamespace(name: string, args: TeamNamespaceArgs): { name: string; object: KubeObject }[] {
  const problems = teamNamespaceProblems(args);
  if (problems.length > 0) throw inputPropertiesError(`kubedev:index:TeamNamespace '${name}'`, problems);
  const main = teamNamespaceName(args);
  return renderTeamNamespace(args).map((object) => ({ name: childName(name, object, main), object }));
}

export class TeamNamespace extends pulumi.ComponentResource {
  /** The Namespace's name (resolves once the Namespace exists). */
  public readonly namespaceName: pulumi.Output<string>;
  /** The CI ServiceAccounts' names. */
  public readonly serviceAccountNames: pulumi.Output<string[]>;
  /** The Roles' names. */
  public readonly roleNames: pulumi.Output<string[]>;
  /** Each environment owner's personal namespace (personal isolation; empty in team mode). */
  public readonly personalNamespaces: pulumi.Output<Record<string, string>>;
  /** Each environment owner's pods (what their attach Role lets them exec and port-forward into). */
  public readonly environmentPods: pulumi.Output<Record<string, string[]>>;
  /** The children by Pulumi name. */
  public readonly resources: Readonly<Record<string, pulumi.CustomResource>>;

  constructor(name: string, args: TeamNamespaceArgs, opts?: pulumi.ComponentResourceOptions) {
    // Validate before anything is registered: bad input creates nothing.
    const plan = planTeamNamespace(name, args);
    super(TEAM_NAMESPACE_TYPE, name, {}, opts);
    const resources: Record<string, pulumi.CustomResource> = {};
    // Every namespaced child depends on its own Namespace (the team's, or a personal one).
    const namespaces = new Map<string, pulumi.CustomResource>();
    for (const child of plan) {
      const ns = child.object.metadata.namespace;
      const resource = kubeResource(child.name, child.object, { parent: this, ...(ns !== undefined ? { dependsOn: [namespaces.get(ns)!] } : {}) });
      if (child.object.kind === 'Namespace') namespaces.set(child.object.metadata.name, resource);
      resources[child.name] = resource;
    }
    const namespace = namespaces.get(teamNamespaceName(args))!;
    this.resources = resources;

    const nameOf = (r: pulumi.CustomResource) => (r as unknown as { metadata: pulumi.Output<{ name: string }> }).metadata.apply((m) => m.name);
    this.namespaceName = nameOf(namespace);
    this.serviceAccountNames = pulumi.all(plan.filter((c) => c.object.kind === 'ServiceAccount').map((c) => nameOf(resources[c.name])));
    this.roleNames = pulumi.all(plan.filter((c) => c.object.kind === 'Role').map((c) => nameOf(resources[c.name])));
    this.environmentPods = pulumi.output(Object.fromEntries(ownedPods(args)));
    this.personalNamespaces = pulumi.all(personalNamespaces(args).map((p) => nameOf(namespaces.get(p.name)!).apply((n) => [p.owner, n] as const))).apply((pairs) => Object.fromEntries(pairs) as Record<string, string>);
    this.registerOutputs({
      namespaceName: this.namespaceName,
      serviceAccountNames: this.serviceAccountNames,
      roleNames: this.roleNames,
      environmentPods: this.environmentPods,
      personalNamespaces: this.personalNamespaces,
    });
  }
}

/**
 * cdk8s construct for a team namespace: the Namespace (id 'Resource'), quota, container defaults,
 * network isolation and least-privilege RBAC, exactly as lib's renderTeamNamespace() writes them.
 * Accepts cdk8s-plus-28 subjects (User, Group, ServiceAccount) as members and kubedev DevEnvironment
 * constructs as hosted environments; hands out its Roles and CI ServiceAccounts as cdk8s-plus types.
 */
import { ApiObject } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { DevEnvironmentSpec } from '../lib/dev-environment';
import { KubeObject } from '../lib/k8s';
import { TeamRole } from '../lib/rbac';
import {
  CiServiceAccountSpec, NetworkAllowanceSpec, TeamEnvironmentSpec, TeamMemberSpec, TeamNamespaceSpec, environmentNamespace, renderTeamNamespace,
  teamEnvironments, teamNamespaceName, teamNamespaceObjects, teamObjectNames, validateTeamNamespace,
} from '../lib/team-namespace';
import { DevEnvironment } from './dev-environment';
import { RenderedObject } from './rendered-object';

/** A member given as a cdk8s-plus subject (kplus.User, kplus.Group, kplus.ServiceAccount). */
export interface SubjectMember {
  readonly subject: kplus.ISubject;
  readonly role: TeamRole;
}

/** A member: lib's { user | group | serviceAccount, role }, or a cdk8s-plus subject with a role. */
export type TeamMember = TeamMemberSpec | SubjectMember;

/** An environment the namespace hosts: a lib spec or a kubedev DevEnvironment construct. */
export type TeamEnvironment = TeamEnvironmentSpec | DevEnvironment;

/** Props of a TeamNamespace: lib's spec, with members and environments in cdk8s terms too. */
export interface TeamNamespaceProps extends Omit<TeamNamespaceSpec, 'members' | 'environments' | 'ci'> {
  /** @default [] */
  readonly members?: readonly TeamMember[];
  /** @default [] */
  readonly ci?: readonly CiServiceAccountSpec[];
  /** @default [] */
  readonly environments?: readonly TeamEnvironment[];
}

/** Turns a cdk8s-plus subject into a lib member. */
export function memberFromSubject(subject: kplus.ISubject, role: TeamRole): TeamMemberSpec {
  const s = subject.toSubjectConfiguration();
  switch (s.kind) {
    case 'User':
      return { user: s.name, role };
    case 'Group':
      return { group: s.name, role };
    case 'ServiceAccount':
      return { serviceAccount: s.name, ...(s.namespace ? { serviceAccountNamespace: s.namespace } : {}), role };
    default:
      throw new Error(`TeamNamespace: subject '${s.name}' has kind '${s.kind}'. Use a kplus.User, kplus.Group or kplus.ServiceAccount.`);
  }
}

function toMember(member: TeamMember): TeamMemberSpec {
  return 'subject' in member ? memberFromSubject(member.subject, member.role) : { ...member };
}

function copyCi(account: CiServiceAccountSpec): CiServiceAccountSpec {
  return { ...account, annotations: account.annotations ? { ...account.annotations } : undefined };
}

/** Reads an environment's spec: a DevEnvironment construct's at call time, a plain spec as given. */
function reader(environment: TeamEnvironment): () => TeamEnvironmentSpec {
  return environment instanceof DevEnvironment ? (): TeamEnvironmentSpec => environment.toSpec() : (): TeamEnvironmentSpec => ({ ...environment });
}

/** A team namespace defined here or elsewhere: what DeveloperAccess and cdk8s-plus bindings need. */
export interface ITeamNamespace {
  /** The team's name (prefix of its objects' names). */
  readonly team: string;
  /** The namespace's name. */
  readonly namespaceName: string;
  /** One of the team's Roles, as a cdk8s-plus IRole. */
  role(role: TeamRole | 'ci'): kplus.IRole;
  /** One of the team's CI ServiceAccounts, as a cdk8s-plus IServiceAccount. */
  ciServiceAccount(name: string): kplus.IServiceAccount;
}

/** A team namespace that exists already (applied from another app or by Pulumi). */
class ImportedTeamNamespace extends Construct implements ITeamNamespace {
  constructor(scope: Construct, id: string, public readonly team: string, public readonly namespaceName: string) {
    super(scope, id);
  }

  public role(role: TeamRole | 'ci'): kplus.IRole {
    return roleRef(this, this.team, role);
  }

  public ciServiceAccount(name: string): kplus.IServiceAccount {
    return serviceAccountRef(this, this.namespaceName, name);
  }
}

function roleRef(scope: Construct, team: string, role: TeamRole | 'ci'): kplus.IRole {
  const id = `RoleRef-${role}`;
  return (scope.node.tryFindChild(id) as kplus.IRole | undefined) ?? kplus.Role.fromRoleName(scope, id, teamObjectNames.role(team, role));
}

function serviceAccountRef(scope: Construct, namespace: string, name: string): kplus.IServiceAccount {
  const id = `CiServiceAccountRef-${name}`;
  return (scope.node.tryFindChild(id) as kplus.IServiceAccount | undefined) ?? kplus.ServiceAccount.fromServiceAccountName(scope, id, name, { namespaceName: namespace });
}

/**
 * A team's namespace. The Namespace is the ApiObject with id 'Resource' (`ApiObject.of(team)`);
 * every other object is a child ApiObject with id `<Kind>-<name>`. Validation runs at synthesis
 * through node.addValidation, with lib's messages.
 */
export class TeamNamespace extends Construct implements ITeamNamespace {
  /**
   * A team namespace that exists already, for DeveloperAccess and cdk8s-plus bindings.
   * @param namespace @default the team name
   */
  public static fromTeamName(scope: Construct, id: string, team: string, namespace?: string): ITeamNamespace {
    return new ImportedTeamNamespace(scope, id, team, namespace ?? team);
  }

  /** The team's name (prefix of its objects' names). */
  public readonly team: string;
  /** The namespace's name. */
  public readonly namespaceName: string;
  /** The Namespace object. */
  public readonly apiObject: ApiObject;

  private readonly base: Omit<TeamNamespaceSpec, 'members' | 'environments' | 'ci'>;
  private readonly memberList: TeamMemberSpec[] = [];
  private readonly ciList: CiServiceAccountSpec[] = [];
  private readonly allowances: NetworkAllowanceSpec[] = [];
  private readonly environmentList: (() => TeamEnvironmentSpec)[] = [];
  private cached?: { key: string; objects: KubeObject[] };

  constructor(scope: Construct, id: string, props: TeamNamespaceProps) {
    super(scope, id);
    const { members, ci, environments, ...base } = props;
    this.base = { ...base, network: props.network ? { ...props.network, allow: undefined } : undefined };
    this.team = props.team;
    this.namespaceName = teamNamespaceName(base);
    this.node.addValidation({ validate: () => validateTeamNamespace(this.toSpec()) });

    // The team's Namespace first (id 'Resource'); every other object as the spec calls for it.
    this.apiObject = this.declare('Namespace', 'v1', this.namespaceName, undefined);
    for (const a of props.network?.allow ?? []) this.allowances.push({ ...a });
    for (const c of ci ?? []) this.ciList.push(copyCi(c));
    for (const m of members ?? []) this.memberList.push(toMember(m));
    for (const e of environments ?? []) this.environmentList.push(reader(e));
    this.declareRendered();
    for (const e of environments ?? []) this.orderAfterNamespace(e);
  }

  /** Adds a member: lib's { user | group | serviceAccount, role } or a cdk8s-plus subject with a role. */
  public addMember(member: TeamMember): void {
    this.memberList.push(toMember(member));
    this.declareRendered();
  }

  /** Adds a CI ServiceAccount (created in the namespace) and returns it as a cdk8s-plus IServiceAccount. */
  public addCiServiceAccount(account: CiServiceAccountSpec): kplus.IServiceAccount {
    this.ciList.push(copyCi(account));
    this.declareRendered();
    return this.ciServiceAccount(account.name);
  }

  /** Allows traffic beyond the default isolation (NetworkPolicy `<team>-allow-<name>`, in every namespace of the team). */
  public addNetworkAllowance(allowance: NetworkAllowanceSpec): void {
    this.allowances.push({ ...allowance });
    this.declareRendered();
  }

  /**
   * Declares an environment the team hosts: its owner may exec and port-forward into it, and its
   * requests count against the quota. In personal mode it must live in its owner's namespace
   * (create it with `namespace: team.namespaceFor(owner)`), which this adds. A DevEnvironment
   * construct is read at synthesis time; its own objects are rendered by the DevEnvironment, not here.
   */
  public addEnvironment(environment: TeamEnvironment): void {
    this.environmentList.push(reader(environment));
    this.declareRendered();
    this.orderAfterNamespace(environment);
  }

  /**
   * The namespace an owner's environments live in: in personal mode (the default) the owner's
   * personal namespace, `<team>-<member>` (see lib's personalNamespaceName()); in team mode the team
   * namespace. The owner must be a member for a personal namespace.
   */
  public namespaceFor(owner: string): string {
    return environmentNamespace(this.toSpec(), owner);
  }

  /** A CI ServiceAccount of this team, as cdk8s-plus sees it (e.g. for a kplus RoleBinding). */
  public ciServiceAccount(name: string): kplus.IServiceAccount {
    return serviceAccountRef(this, this.namespaceName, name);
  }

  /** One of the team's Roles, as a cdk8s-plus IRole (bind your own kplus subjects to it). */
  public role(role: TeamRole | 'ci'): kplus.IRole {
    return roleRef(this, this.team, role);
  }

  /** The lib spec this construct stands for, with every mutation applied. */
  public toSpec(): TeamNamespaceSpec {
    const allow = [...this.allowances];
    return {
      ...this.base,
      network: this.base.network || allow.length > 0 ? { ...this.base.network, allow } : undefined,
      members: [...this.memberList],
      ci: [...this.ciList],
      environments: this.environmentList.map((read) => read()),
    };
  }

  /** The rendered objects, as lib writes them (throws a ValidationError when the spec is invalid). */
  public render(): KubeObject[] {
    const spec = this.toSpec();
    const key = JSON.stringify(spec);
    if (this.cached?.key !== key) this.cached = { key, objects: renderTeamNamespace(spec) };
    return this.cached.objects;
  }

  /** The environments' specs, with the namespace filled in where left out (the owner's, see namespaceFor()). */
  public environmentSpecs(): DevEnvironmentSpec[] {
    return teamEnvironments(this.toSpec());
  }

  /** Declares an ApiObject for every object lib renders for the spec as it stands (idempotent). */
  private declareRendered(): void {
    let objects: KubeObject[];
    try {
      objects = teamNamespaceObjects(this.toSpec());
    } catch {
      return; // An invalid spec: validation reports it at synthesis.
    }
    for (const o of objects) this.declare(o.kind, o.apiVersion, o.metadata.name, o.metadata.namespace);
  }

  /** cdk8s writes a chart's objects in dependency order: a DevEnvironment after its personal Namespace. */
  private orderAfterNamespace(environment: TeamEnvironment): void {
    if (!(environment instanceof DevEnvironment) || environment.namespace === this.namespaceName) return;
    const ns = this.node.tryFindChild(`Namespace-${environment.namespace}`);
    if (ns) environment.node.addDependency(ns);
  }

  /**
   * Adds the ApiObject for (kind, name, namespace) once; its body comes from render() at synthesis.
   * Ids: 'Resource' for the team's Namespace, `<Kind>-<name>` in the team namespace,
   * `Namespace-<ns>` and `<Kind>-<ns>-<name>` for a personal namespace.
   */
  private declare(kind: string, apiVersion: string, name: string, namespace: string | undefined): ApiObject {
    const own = kind === 'Namespace' ? name === this.namespaceName : namespace === this.namespaceName;
    const id = kind === 'Namespace' ? (own ? 'Resource' : `Namespace-${name}`) : own ? `${kind}-${name}` : `${kind}-${namespace}-${name}`;
    const existing = this.node.tryFindChild(id);
    if (existing) return existing as ApiObject;
    const body = kind === 'Role' ? ['rules'] : kind === 'RoleBinding' ? ['roleRef', 'subjects'] : kind === 'ServiceAccount' || kind === 'Namespace' ? [] : ['spec'];
    return new RenderedObject(this, id, {
      apiVersion,
      kind,
      name,
      namespace,
      body,
      produce: () => {
        const found = this.render().find((o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === namespace);
        if (!found) throw new Error(`TeamNamespace '${this.team}': lib rendered no ${kind} '${name}'${namespace ? ` in namespace '${namespace}'` : ''}.`);
        return found;
      },
    });
  }
}

/**
 * cdk8s construct granting one subject exec and port-forward into named dev environments, and
 * optionally the team's developer Role: lib's renderDeveloperAccess() as ApiObjects.
 */
import { ApiObject } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { DeveloperAccessSpec, developerAccessName, renderDeveloperAccess, validateDeveloperAccess } from '../lib/developer-access';
import { KubeObject } from '../lib/k8s';
import { Subject, teamObjectNames } from '../lib/team-namespace';
import { DevEnvironment } from './dev-environment';
import { RenderedObject } from './rendered-object';
import { ITeamNamespace } from './team-namespace';

/** Who gets access: a cdk8s-plus subject, or lib's { user | group | serviceAccount }. */
export type AccessSubject = kplus.ISubject | { readonly user: string } | { readonly group: string } | { readonly serviceAccount: string; readonly namespace?: string };

export interface DeveloperAccessProps {
  readonly subject: AccessSubject;
  /** Environments to exec and port-forward into: DevEnvironment constructs or environment names. */
  readonly environments: readonly (DevEnvironment | string)[];
  /** The team (TeamNamespace, or TeamNamespace.fromTeamName()): supplies the namespace, and the subject is also bound to its developer Role. @default none */
  readonly team?: ITeamNamespace;
  /** @default the first DevEnvironment's (a personal namespace in personal mode), else the team's namespace */
  readonly namespace?: string;
  /**
   * Bind the subject to the team's developer Role in that namespace too (needs `team`). In a personal
   * namespace that Role is the owner's, Secrets included: say so explicitly to share it.
   * @default true when `team` is given and the access is in the team namespace
   */
  readonly developer?: boolean;
  /**
   * Deployments the subject's `kubedev up` may take over (get and patch by name) for replace-mode
   * twins. The originals of the DevEnvironments given, when `kubedev up` scales them and they live
   * in this namespace, are added by themselves.
   * @default those originals
   */
  readonly takeOver?: readonly string[];
  /** Role/RoleBinding name. @default `<team>-access-<subject>` with a team, else `access-<subject>` */
  readonly name?: string;
}

function toSubject(s: AccessSubject): Subject {
  if ('toSubjectConfiguration' in s) {
    const c = s.toSubjectConfiguration();
    if (c.kind === 'ServiceAccount') return { kind: 'ServiceAccount', name: c.name, ...(c.namespace ? { namespace: c.namespace } : {}) };
    return { kind: c.kind as 'User' | 'Group', apiGroup: 'rbac.authorization.k8s.io', name: c.name };
  }
  if ('user' in s) return { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: s.user };
  if ('group' in s) return { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: s.group };
  return { kind: 'ServiceAccount', name: s.serviceAccount, ...(s.namespace ? { namespace: s.namespace } : {}) };
}

/**
 * Grants a subject developer access to environments: exec and port-forward into their pods only
 * (`<env>-0`), plus (with a team) the team's developer Role. The Role has id 'Resource'.
 */
export class DeveloperAccess extends Construct {
  /** The Role (id 'Resource'). */
  public readonly apiObject: ApiObject;
  public readonly namespace: string;
  private readonly spec: () => DeveloperAccessSpec;

  constructor(scope: Construct, id: string, props: DeveloperAccessProps) {
    super(scope, id);
    const firstEnv = props.environments.find((e): e is DevEnvironment => e instanceof DevEnvironment);
    this.namespace = props.namespace ?? firstEnv?.namespace ?? props.team?.namespaceName ?? '';
    const subject = toSubject(props.subject);
    // In a personal namespace the developer Role is the owner's (Secrets included): bind it only when asked.
    const bindDeveloper = props.team !== undefined && (props.developer ?? this.namespace === props.team.namespaceName);
    const team = props.team?.team;
    const base: DeveloperAccessSpec = {
      namespace: this.namespace,
      subject,
      environments: [],
      ...(bindDeveloper && team ? { developerRole: teamObjectNames.role(team, 'developer') } : {}),
      ...(team ? { labels: { 'kubedev.io/team': team } } : {}),
    };
    const name = props.name ?? (team ? `${team}-${developerAccessName(base)}` : developerAccessName(base));
    // Key Secret names: a DevEnvironment's own (they may be customized), the defaults for names given as strings.
    this.spec = () => ({
      ...base,
      name,
      environments: props.environments.map((e) => (typeof e === 'string' ? e : e.name)),
      takeOver: [...new Set([...(props.takeOver ?? []), ...props.environments.flatMap((e) => {
        const t = typeof e === 'string' ? undefined : e.attachRecord.takeOver;
        return t && t.namespace === this.namespace ? [t.name] : [];
      })])],
      keySecrets: props.environments.flatMap((e) =>
        typeof e === 'string' ? [`${e}-ssh-host-keys`, `${e}-ssh-authorized-keys`] : [e.attachRecord.ssh.hostKeySecret, e.attachRecord.ssh.authorizedKeysSecret]),
    });
    this.node.addValidation({ validate: () => validateDeveloperAccess(this.spec()) });

    const object = (objectId: string, kind: string, objectName: string, body: string[]) =>
      new RenderedObject(this, objectId, {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind, name: objectName, namespace: this.namespace, body,
        produce: () => {
          const found = this.render().find((o) => o.kind === kind && o.metadata.name === objectName);
          if (!found) throw new Error(`DeveloperAccess '${objectName}': lib rendered no ${kind} '${objectName}'.`);
          return found;
        },
      });
    this.apiObject = object('Resource', 'Role', name, ['rules']);
    object('Binding', 'RoleBinding', name, ['roleRef', 'subjects']);
    if (base.developerRole) object('DeveloperBinding', 'RoleBinding', `${name}-developer`, ['roleRef', 'subjects']);
  }

  /** The objects, as lib renders them. */
  public render(): KubeObject[] {
    return renderDeveloperAccess(this.spec());
  }
}

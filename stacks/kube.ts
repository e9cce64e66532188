/**
 * From lib's plain Kubernetes JSON to typed @pulumi/kubernetes resources: one class per kind (never
 * a CustomResource or yaml.ConfigGroup for built-in kinds), children named `${parent}-<role>`.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { KubeObject } from '../lib/k8s';

/**
 * The child's role in its component's name: `${name}-<role>`. Singletons by kind, others by kind and
 * name. Objects outside the component's main namespace (a team's personal namespaces) carry their
 * namespace too: `namespace-<ns>`, `<kind>-<ns>-<name>`.
 */
export function childRole(o: KubeObject, mainNamespace?: string): string {
  const other = o.kind === 'Namespace' ? o.metadata.name : o.metadata.namespace;
  if (mainNamespace !== undefined && other !== undefined && other !== mainNamespace) {
    return o.kind === 'Namespace' ? `namespace-${other}` : `${o.kind.toLowerCase()}-${other}-${o.metadata.name}`;
  }
  switch (o.kind) {
    case 'Namespace':
      return 'namespace';
    case 'StatefulSet':
      return 'statefulset';
    case 'Service':
      return 'service';
    default:
      return `${o.kind.toLowerCase()}-${o.metadata.name}`;
  }
}

/** The Pulumi resource name of a component's child. */
export function childName(component: string, o: KubeObject, mainNamespace?: string): string {
  return `${component}-${childRole(o, mainNamespace)}`;
}

/** The Pulumi type token each kind becomes (what the mocks see). */
export const KIND_TYPES: Readonly<Record<string, string>> = {
  'v1/Namespace': 'kubernetes:core/v1:Namespace',
  'v1/ResourceQuota': 'kubernetes:core/v1:ResourceQuota',
  'v1/LimitRange': 'kubernetes:core/v1:LimitRange',
  'v1/ServiceAccount': 'kubernetes:core/v1:ServiceAccount',
  'v1/ConfigMap': 'kubernetes:core/v1:ConfigMap',
  'v1/Service': 'kubernetes:core/v1:Service',
  'v1/PersistentVolumeClaim': 'kubernetes:core/v1:PersistentVolumeClaim',
  'apps/v1/StatefulSet': 'kubernetes:apps/v1:StatefulSet',
  'apps/v1/Deployment': 'kubernetes:apps/v1:Deployment',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes:networking.k8s.io/v1:NetworkPolicy',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes:rbac.authorization.k8s.io/v1:Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes:rbac.authorization.k8s.io/v1:RoleBinding',
};

/**
 * Creates the typed resource for one rendered object. The object is passed as the resource's args
 * unchanged (apiVersion, kind, metadata with its explicit name, and the kind's body), so the
 * provider never auto-names it and the inputs equal lib's render.
 */
export function kubeResource(name: string, o: KubeObject, opts: pulumi.CustomResourceOptions): pulumi.CustomResource {
  const args = o as never;
  switch (`${o.apiVersion}/${o.kind}`) {
    case 'v1/Namespace':
      return new k8s.core.v1.Namespace(name, args, opts);
    case 'v1/ResourceQuota':
      return new k8s.core.v1.ResourceQuota(name, args, opts);
    case 'v1/LimitRange':
      return new k8s.core.v1.LimitRange(name, args, opts);
    case 'v1/ServiceAccount':
      return new k8s.core.v1.ServiceAccount(name, args, opts);
    case 'v1/ConfigMap':
      return new k8s.core.v1.ConfigMap(name, args, opts);
    case 'v1/Service':
      return new k8s.core.v1.Service(name, args, opts);
    case 'v1/PersistentVolumeClaim':
      return new k8s.core.v1.PersistentVolumeClaim(name, args, opts);
    case 'apps/v1/StatefulSet':
      return new k8s.apps.v1.StatefulSet(name, args, opts);
    case 'apps/v1/Deployment':
      return new k8s.apps.v1.Deployment(name, args, opts);
    case 'networking.k8s.io/v1/NetworkPolicy':
      return new k8s.networking.v1.NetworkPolicy(name, args, opts);
    case 'rbac.authorization.k8s.io/v1/Role':
      return new k8s.rbac.v1.Role(name, args, opts);
    case 'rbac.authorization.k8s.io/v1/RoleBinding':
      return new k8s.rbac.v1.RoleBinding(name, args, opts);
    default:
      throw new Error(`kubedev: no @pulumi/kubernetes class is mapped for ${o.apiVersion} ${o.kind} ('${o.metadata.name}'). Add it to stacks/kube.ts.`);
  }
}

/**
 * Bad input is the user's to fix, not a crash: without a stack, Pulumi's program runner prints the
 * message alone (it prints `err.stack` when there is one).
 */
export function withoutStack<E extends Error>(error: E): E {
  Object.defineProperty(error, 'stack', { value: undefined, configurable: true, writable: true });
  return error;
}

/**
 * Turns lib's `<Kind> '<name>': <problem> ...` messages with property paths into the error Pulumi
 * prints per property.
 */
export function inputPropertiesError(what: string, problems: readonly { path: string; message: string }[]): pulumi.InputPropertiesError {
  return withoutStack(
    new pulumi.InputPropertiesError({
      message: `${what}: ${problems.length} invalid input propert${problems.length === 1 ? 'y' : 'ies'}:\n${problems.map((p) => `  - ${p.path || '(args)'}: ${p.message}`).join('\n')}`,
      errors: problems.map((p) => ({ propertyPath: p.path, reason: p.message })),
    }),
  );
}

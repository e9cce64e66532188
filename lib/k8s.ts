/**
 * The few Kubernetes shapes lib needs to write objects. Plain JSON only: nothing here is a class,
 * so render() output can be compared, serialized and handed to cdk8s or Pulumi unchanged.
 */

/** Any JSON value. */
export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json | undefined };

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

/** A rendered Kubernetes object: apiVersion, kind, metadata and whatever its kind carries. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly [field: string]: unknown;
}

/** A node taint toleration. @see https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling */
export interface Toleration {
  readonly key?: string;
  readonly operator?: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  readonly tolerationSeconds?: number;
}

/** Compute resources of one container, as Kubernetes quantities ("500m", "1Gi"). */
export interface ResourceRequirements {
  readonly requests?: { readonly cpu?: string; readonly memory?: string; readonly 'ephemeral-storage'?: string };
  readonly limits?: { readonly cpu?: string; readonly memory?: string; readonly 'ephemeral-storage'?: string };
}

/** Deep copy of plain JSON with undefined fields dropped: what render() hands out. */
export function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

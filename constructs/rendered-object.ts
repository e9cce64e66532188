/**
 * An ApiObject whose body comes from lib's render() at synthesis time, so mutators called after
 * construction (addPort, addCache, ...) still shape it. `addJsonPatch()` keeps working on it.
 */
import { ApiObject, Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { KubeObject } from '../lib/k8s';

export interface RenderedObjectProps {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  /** Top-level fields other than apiVersion, kind and metadata (e.g. ['spec'], ['data']). */
  readonly body: readonly string[];
  /** Returns this object as lib renders it now. */
  readonly produce: () => KubeObject;
}

export class RenderedObject extends ApiObject {
  private readonly produce: () => KubeObject;

  constructor(scope: Construct, id: string, props: RenderedObjectProps) {
    const body: Record<string, unknown> = {};
    for (const key of props.body) body[key] = Lazy.any({ produce: () => props.produce()[key] });
    super(scope, id, {
      apiVersion: props.apiVersion,
      kind: props.kind,
      metadata: { name: props.name, namespace: props.namespace },
      ...body,
    });
    this.produce = props.produce;
  }

  public toJson(): Record<string, unknown> {
    const { metadata } = this.produce();
    for (const [k, v] of Object.entries(metadata.labels ?? {})) this.metadata.addLabel(k, v);
    for (const [k, v] of Object.entries(metadata.annotations ?? {})) this.metadata.addAnnotation(k, v);
    return super.toJson();
  }
}

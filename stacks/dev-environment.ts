/**
 * Pulumi ComponentResource `kubedev:index:DevEnvironment`: lib's renderDevEnvironment() output as
 * typed @pulumi/kubernetes resources, children `${name}-<role>`, with the attach record as an output.
 */
import * as pulumi from '@pulumi/pulumi';
import { AttachRecord } from '../lib/attach';
import { DevEnvironmentSpec, attachRecordOf, renderDevEnvironment, validateDevEnvironmentAt } from '../lib/dev-environment';
import { Problem } from '../lib/problems';
import { DevModeOptions, devModeOf } from '../lib/dev-mode';
import { KubeObject } from '../lib/k8s';
import { environmentPod } from '../lib/team-namespace';
import { childName, inputPropertiesError, kubeResource } from './kube';

export const DEV_ENVIRONMENT_TYPE = 'kubedev:index:DevEnvironment';

/** For a program that creates the original too (scaleOriginal 'output'), and for checking its objects. */
export { scaledDownOriginal, trafficSplits } from '../lib/takeover';

/** The component's args: lib's spec, as plain values (they decide which resources exist). */
export type DevEnvironmentArgs = DevEnvironmentSpec;

/** Every problem of the args, with its property path. */
export function devEnvironmentProblems(args: DevEnvironmentArgs): Problem[] {
  return validateDevEnvironmentAt(args);
}

/**
 * The children to create, in apply order: `{ name, object }`.
 * @throws pulumi.InputPropertiesError naming every invalid property.
 */
export function planDevEnvironment(name: string, args: DevEnvironmentArgs): { name: string; object: KubeObject }[] {
  const problems = devEnvironmentProblems(args);
  if (problems.length > 0) throw inputPropertiesError(`kubedev:index:DevEnvironment '${name}'`, problems);
  return renderDevEnvironment(args).map((object) => ({ name: childName(name, object), object }));
}

export class DevEnvironment extends pulumi.ComponentResource {
  /**
   * The development twin of a Deployment (lib's devModeOf(); parity with the cdk8s
   * `DevEnvironment.fromDeployment`). Pulumi cannot change the inputs of a resource it did not
   * create, so in replace mode (the default) the original is scaled to 0 either by `kubedev up` at
   * run time (`scaleOriginal: 'up'`, the default) or, when this program creates the original too, by
   * the program itself: pass `scaleOriginal: 'output'` and create the original from
   * `scaledDownOriginal(args, twinName)` (replicas 0) while the twin exists.
   * @param deployment the original's args as plain values (what the program passes to its
   *   `k8s.apps.v1.Deployment`, or the object read from the cluster)
   */
  public static fromDeployment(name: string, deployment: KubeObject, options: DevModeOptions, opts?: pulumi.ComponentResourceOptions): DevEnvironment {
    return new DevEnvironment(name, devModeOf(deployment, options), opts);
  }

  /** The namespace it runs in. */
  public readonly namespace: pulumi.Output<string>;
  /** The StatefulSet's name. */
  public readonly workloadName: pulumi.Output<string>;
  /** The stable pod name, `<name>-0`. */
  public readonly podName: pulumi.Output<string>;
  /** What `kubedev sync`/`kubedev up` need to reach it. */
  public readonly attachRecord: pulumi.Output<AttachRecord>;
  /** The children by Pulumi name. */
  public readonly resources: Readonly<Record<string, pulumi.CustomResource>>;

  constructor(name: string, args: DevEnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
    // Validate before anything is registered: bad input creates nothing.
    const plan = planDevEnvironment(name, args);
    super(DEV_ENVIRONMENT_TYPE, name, {}, opts);
    const resources: Record<string, pulumi.CustomResource> = {};
    for (const child of plan) resources[child.name] = kubeResource(child.name, child.object, { parent: this });
    this.resources = resources;
    const workload = plan.find((c) => c.object.kind === 'StatefulSet')!;
    this.namespace = pulumi.output(args.namespace);
    // Resolve once the StatefulSet is registered, so consumers of the record wait for the workload.
    const metadata = (resources[workload.name] as unknown as { metadata: pulumi.Output<{ name: string }> }).metadata;
    this.workloadName = metadata.apply((m) => m.name);
    this.podName = metadata.apply(() => environmentPod(args.name));
    const record = attachRecordOf(args);
    this.attachRecord = metadata.apply(() => record);
    this.registerOutputs({
      namespace: this.namespace,
      workloadName: this.workloadName,
      podName: this.podName,
      attachRecord: this.attachRecord,
    });
  }
}

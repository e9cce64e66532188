/**
 * Pulumi mocks for the stacks tests: records every registered resource (custom and component) with
 * its inputs. Call installMocks() in beforeAll, then import the module under test.
 */
import * as pulumi from '@pulumi/pulumi';

export interface Registered {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly custom: boolean;
}

export async function installMocks(project = 'kubedev-test', stack = 'test', config: Record<string, string> = {}): Promise<Registered[]> {
  const registered: Registered[] = [];
  pulumi.runtime.setAllConfig(config);
  await pulumi.runtime.setMocks(
    {
      newResource: (args: pulumi.runtime.MockResourceArgs) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs, custom: args.custom ?? false });
        return { id: args.custom ? `${args.name}-id` : undefined, state: args.inputs };
      },
      call: (args: pulumi.runtime.MockCallArgs) => args.inputs,
    },
    project,
    stack,
    false,
  );
  return registered;
}

/** The value of an Output (mocks resolve everything). */
export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => { resolve(v); return v; }));
}

/** Waits until every given resource is registered (its URN resolved). */
export async function settled(resources: readonly pulumi.Resource[]): Promise<string[]> {
  return Promise.all(resources.map((r) => promiseOf(r.urn)));
}

/** A resource's parent, as the SDK records it (internal field, stable across 3.x). */
export function parentOf(r: pulumi.Resource): pulumi.Resource | undefined {
  return (r as unknown as { __parentResource?: pulumi.Resource }).__parentResource;
}

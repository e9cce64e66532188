/**
 * cdk8s constructs for dev environments: `DevEnvironment`, and `DevEnvironment.fromDeployment()` for
 * the development twin of a workload the user already defines.
 */
import { ApiObject, Chart, JsonPatch } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { AttachRecord } from '../lib/attach';
import {
  CacheSpec, DevEnvironmentSpec, EnvVarSpec, OnSyncHookSpec, PortSpec, ReversePortSpec, SyncFolderSpec, attachRecordOf, cacheClaimName, renderDevEnvironment,
  validateDevEnvironment,
} from '../lib/dev-environment';
import { DevModeOptions, devModeOf } from '../lib/dev-mode';
import { KubeObject } from '../lib/k8s';
import { problem } from '../lib/problems';
import { DEFAULT_DEV_MODE, REPLACED_BY_ANNOTATION, takeOverProblems } from '../lib/takeover';
import { RenderedObject } from './rendered-object';

/** Props of a DevEnvironment: the lib spec, with the namespace taken from the chart when left out. */
export interface DevEnvironmentProps extends Omit<DevEnvironmentSpec, 'namespace' | 'inherit'> {
  /** @default the chart's namespace, else 'default' */
  readonly namespace?: string;
}

/** Options of DevEnvironment.fromDeployment(). */
export interface DevModeProps extends Omit<DevModeOptions, 'namespace'> {
  /** @default the Deployment's namespace, else the chart's, else 'default' */
  readonly namespace?: string;
}

/** A Deployment to develop: a cdk8s-plus Deployment, an ApiObject, or a plain object. */
export type DeploymentSource = kplus.Deployment | ApiObject | KubeObject;

/**
 * A developer's environment: a StatefulSet running the dev image beside an OpenSSH sync sidecar,
 * with its workspace and caches, as rendered by lib. The StatefulSet has id 'Resource'.
 */
export class DevEnvironment extends Construct {
  /**
   * The development twin of an existing Deployment, as `okteto up` makes it: same env, config
   * mounts, service account and labels; dev image and command, no probes, one replica. The original
   * is read at synthesis time, so later changes to it carry over. In `replace` mode (the default) an
   * original in the same app is written with replicas 0 (and `kubedev.io/replaced-by`); one from
   * elsewhere is scaled to 0 by `kubedev up`. In `side-by-side` mode the original is left untouched
   * and the twin drops its selector labels. Validation reports any Service of the app that would
   * select the twin and a running workload.
   */
  public static fromDeployment(scope: Construct, id: string, deployment: DeploymentSource, options: DevModeProps): DevEnvironment {
    const { apiObject, read } = sourceOf(deployment);
    const name = options.name ?? `${apiObject?.name ?? (deployment as KubeObject).metadata.name}-dev`;
    const namespace = options.namespace ?? apiObject?.metadata.namespace ?? (deployment as KubeObject).metadata?.namespace;
    const inApp = apiObject !== undefined && apiObject.node.root === scope.node.root;
    const mode = options.mode ?? DEFAULT_DEV_MODE;
    const scaleOriginal = options.scaleOriginal ?? (inApp ? 'output' : 'up');
    const env = new DevEnvironment(scope, id, { ...options, name, namespace, image: options.image ?? '' });
    env.deriveFrom = (spec) => {
      const twin = devModeOf(read(), { ...spec, image: options.image, container: options.container, mode, scaleOriginal });
      return { ...twin, namespace: spec.namespace };
    };
    if (mode === 'replace' && scaleOriginal === 'output') {
      if (inApp) {
        // lib's scaledDownOriginal(), applied to the user's own object (the parity test holds them equal).
        apiObject.addJsonPatch(JsonPatch.add('/spec/replicas', 0));
        apiObject.metadata.addAnnotation(REPLACED_BY_ANNOTATION, name);
      } else {
        env.node.addValidation({
          validate: () => [problem('DevEnvironment', name, "scaleOriginal is 'output' but the original Deployment is not in this app, so nothing would scale it to 0", 'output',
            "Leave scaleOriginal out (kubedev up scales it at run time), or define the original in this app")],
        });
      }
    }
    env.node.addValidation({ validate: () => takeOverProblems(appObjects(env), { name, namespace: env.namespace }) });
    return env;
  }

  /** The environment's name; its pod is `<name>-0`. */
  public readonly name: string;
  public readonly namespace: string;
  /** The StatefulSet (id 'Resource'): the escape hatch for `addJsonPatch()`. */
  public readonly apiObject: ApiObject;

  private readonly props: DevEnvironmentProps;
  private readonly syncFolders: SyncFolderSpec[] = [];
  private readonly portList: PortSpec[] = [];
  private readonly cacheList: CacheSpec[] = [];
  private readonly envList: EnvVarSpec[] = [];
  private readonly hookList: OnSyncHookSpec[] = [];
  private readonly reverseList: ReversePortSpec[] = [];
  private deriveFrom?: (spec: DevEnvironmentSpec) => DevEnvironmentSpec;
  private cached?: { key: string; objects: KubeObject[] };

  constructor(scope: Construct, id: string, props: DevEnvironmentProps) {
    super(scope, id);
    this.props = props;
    this.name = props.name;
    this.namespace = props.namespace ?? Chart.of(this).namespace ?? 'default';

    this.node.addValidation({
      validate: () => {
        try {
          return validateDevEnvironment(this.toSpec());
        } catch (e) {
          // Dev mode: the original could not be read (no such container, not a Deployment).
          return [(e as Error).message];
        }
      },
    });
    const workspace = this.object('Workspace', 'v1', 'PersistentVolumeClaim', `${this.name}-workspace`, ['spec']);
    const sshd = this.object('SshdConfig', 'v1', 'ConfigMap', `${this.name}-sshd`, ['data']);
    const service = this.object('Service', 'v1', 'Service', this.name, ['spec']);
    this.apiObject = this.object('Resource', 'apps/v1', 'StatefulSet', this.name, ['spec']);
    // cdk8s writes a chart's objects in dependency order: what the pod mounts comes before it.
    this.apiObject.node.addDependency(workspace, sshd, service);

    for (const f of props.sync ?? []) this.addSyncFolder(f);
    for (const p of props.ports ?? []) this.addPort(p);
    for (const c of props.caches ?? []) this.addCache(c);
    for (const e of props.env ?? []) this.addEnv(e);
    for (const h of props.onSync ?? []) this.addOnSync(h);
    for (const r of props.reverse ?? []) this.addReverse(r);
  }

  /** After a sync batch that changed matching paths: run a command in the dev container, or restart the dev process. */
  public addOnSync(hook: OnSyncHookSpec): void {
    this.hookList.push({ ...hook, paths: Array.isArray(hook.paths) ? [...hook.paths] : hook.paths });
  }

  /** Makes a port on the developer's machine reachable in the pod at 127.0.0.1:<remote> while `kubedev up` runs. */
  public addReverse(forward: ReversePortSpec): void {
    this.reverseList.push({ ...forward });
  }

  /** Mirrors a local folder to an absolute path in the dev container. */
  public addSyncFolder(folder: SyncFolderSpec): void {
    this.syncFolders.push({ ...folder, ignore: folder.ignore ? [...folder.ignore] : undefined });
  }

  /** Declares a port the dev container serves (forwarded by `kubedev up`). */
  public addPort(port: PortSpec): void {
    this.portList.push({ ...port });
  }

  /** Adds a persistent cache, with its PersistentVolumeClaim. */
  public addCache(cache: CacheSpec): void {
    this.cacheList.push({ ...cache });
    const claim = this.object(`Cache${this.cacheList.length - 1}`, 'v1', 'PersistentVolumeClaim', cacheClaimName(this.name, cache), ['spec']);
    this.apiObject.node.addDependency(claim);
  }

  /** Sets an environment variable: a value, or a reference to a Secret or ConfigMap key. */
  public addEnv(variable: EnvVarSpec): void {
    this.envList.push({ ...variable });
  }

  /** The lib spec this construct stands for, with every mutation applied. */
  public toSpec(): DevEnvironmentSpec {
    const own: DevEnvironmentSpec = {
      ...this.props,
      namespace: this.namespace,
      sync: this.syncFolders.length > 0 ? [...this.syncFolders] : undefined,
      ports: [...this.portList],
      caches: [...this.cacheList],
      env: [...this.envList],
      onSync: this.hookList.length > 0 ? [...this.hookList] : undefined,
      reverse: this.reverseList.length > 0 ? [...this.reverseList] : undefined,
    };
    if (!this.deriveFrom) return own;
    // Dev mode: what the user did not set comes from the original Deployment.
    return this.deriveFrom({ ...own, ports: this.portList.length > 0 ? own.ports : undefined, image: this.props.image || undefined } as DevEnvironmentSpec);
  }

  /** The record `kubedev sync`/`kubedev up` read from the synthesized StatefulSet. */
  public get attachRecord(): AttachRecord {
    return attachRecordOf(this.toSpec());
  }

  private rendered(): KubeObject[] {
    const spec = this.toSpec();
    const key = JSON.stringify(spec);
    if (this.cached?.key !== key) this.cached = { key, objects: renderDevEnvironment(spec) };
    return this.cached.objects;
  }

  private object(id: string, apiVersion: string, kind: string, name: string, body: string[]): ApiObject {
    return new RenderedObject(this, id, {
      apiVersion, kind, name, namespace: this.namespace, body,
      produce: () => {
        const found = this.rendered().find((o) => o.kind === kind && o.metadata.name === name);
        if (!found) throw new Error(`DevEnvironment '${this.name}': lib rendered no ${kind} '${name}'.`);
        return found;
      },
    });
  }
}

function sourceOf(deployment: DeploymentSource): { apiObject?: ApiObject; read: () => KubeObject } {
  if (deployment instanceof kplus.Deployment || deployment instanceof ApiObject) {
    const apiObject = ApiObject.of(deployment);
    return { apiObject, read: () => apiObject.toJson() as KubeObject };
  }
  return { read: () => deployment };
}

/** Every object of the app, as synthesized; objects that cannot render are their own validation's to report. */
function appObjects(scope: Construct): KubeObject[] {
  const out: KubeObject[] = [];
  for (const c of scope.node.root.node.findAll()) {
    if (!(c instanceof ApiObject)) continue;
    try {
      out.push(c.toJson() as KubeObject);
    } catch {
      // reported by that object's own validation
    }
  }
  return out;
}

/**
 * The shape of a DevEnvironment spec, checked before its values: a JavaScript caller, a Pulumi config
 * or an attach record may hand lib a string where a list belongs. Each such field becomes one problem,
 * and the value checks then see the field as not given, so validation never throws.
 */
import { DevEnvironmentSpec } from './dev-environment-spec';

type Add = (path: string, what: string, got: unknown, fix: string) => void;

const LISTS_OF_OBJECTS = ['sync', 'env', 'envFrom', 'ports', 'caches', 'tolerations', 'onSync', 'reverse'] as const;
const LISTS_OF_STRINGS = ['command', 'args'] as const;
const OBJECTS = ['resources', 'nodeSelector', 'labels', 'annotations', 'workspace', 'sidecar', 'security', 'inherit'] as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Returns the spec with every field of the wrong shape left out (and one problem added for each), so
 * that the checks of values may read any field without a TypeError.
 */
export function shapedSpec(spec: unknown, add: Add): DevEnvironmentSpec {
  if (!isObject(spec)) {
    add('', 'the spec is not an object', spec, 'Pass an object with at least name, namespace, owner and image');
    return {} as DevEnvironmentSpec;
  }
  const out: Record<string, unknown> = { ...spec };
  for (const field of LISTS_OF_OBJECTS) {
    const v = spec[field];
    if (v === undefined) continue;
    if (!Array.isArray(v)) {
      add(field, `${field} is not a list`, v, `Give ${field} as a list of objects, or leave it out`);
      delete out[field];
    } else if (v.some((x) => !isObject(x))) {
      v.forEach((x, i) => {
        if (!isObject(x)) add(`${field}[${i}]`, `${field} #${i + 1} is not an object`, x, `Give each entry of ${field} as an object`);
      });
      out[field] = v.filter(isObject);
    }
  }
  for (const field of LISTS_OF_STRINGS) {
    const v = spec[field];
    if (v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) {
      add(field, `${field} is not a list of strings`, v, `Give ${field} as a list of strings, e.g. ['npm', 'run', 'dev']`);
      delete out[field];
    }
  }
  for (const field of OBJECTS) {
    const v = spec[field];
    if (v !== undefined && !isObject(v)) {
      add(field, `${field} is not an object`, v, `Give ${field} as an object, or leave it out`);
      delete out[field];
    }
  }
  const nested: [string, string, string][] = [['security', 'addCapabilities', 'strings'], ['inherit', 'volumes', 'objects'], ['inherit', 'volumeMounts', 'objects']];
  for (const [parent, field, kind] of nested) {
    const holder = out[parent] as Record<string, unknown> | undefined;
    const v = holder?.[field];
    if (v === undefined) continue;
    const ok = Array.isArray(v) && v.every((x) => (kind === 'strings' ? typeof x === 'string' : isObject(x)));
    if (!ok) {
      add(`${parent}.${field}`, `${parent}.${field} is not a list of ${kind}`, v, `Give ${parent}.${field} as a list of ${kind}, or leave it out`);
      out[parent] = { ...holder, [field]: undefined };
    }
  }
  return out as unknown as DevEnvironmentSpec;
}

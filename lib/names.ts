/**
 * Name and quantity checks shared by every spec. Each returns a problem text (without the
 * `<kind> '<name>':` prefix) or undefined; callers wrap it with problem().
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** True for a DNS-1123 label of at most `max` characters (63 by default). @see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-label-names */
export function isDnsLabel(value: unknown, max = 63): value is string {
  return typeof value === 'string' && value.length <= max && DNS1123_LABEL.test(value);
}

/** True for a DNS-1123 subdomain (253 characters at most). */
export function isDnsSubdomain(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 253 && DNS1123_SUBDOMAIN.test(value);
}

/** True for a port name as Kubernetes takes it: at most 15 characters, lowercase, at least one letter. */
export function isPortName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 15 && IANA_SVC_NAME.test(value) && /[a-z]/.test(value) && !value.includes('--');
}

/** Turns any text into a DNS-1123 label fragment: `/home/app/.cache` -> `home-app-cache`. */
export function slug(value: string, max = 40): string {
  const s = value.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return (s || 'root').slice(0, max).replace(/-+$/, '');
}

// Kubernetes quantity grammar: a signed decimal number with an optional binary, decimal or exponent suffix.
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

/** True for a Kubernetes resource quantity ("500m", "1.5Gi", "2"). @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ */
export function isQuantity(value: unknown): value is string {
  return typeof value === 'string' && QUANTITY.test(value);
}

const SUFFIX: Record<string, number> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The numeric value of a quantity (cores for cpu, bytes for memory), or NaN if it is not one. */
export function parseQuantity(value: string): number {
  const m = QUANTITY.exec(value);
  if (!m) return NaN;
  const suffix = m[3] ?? '';
  if (/^[eE]/.test(suffix)) return Number(value);
  return Number(value.slice(0, value.length - suffix.length)) * SUFFIX[suffix];
}

/** True for an absolute POSIX path that is not `/` itself and has no `.`/`..` segments or empty segments. */
export function isAbsoluteSubPath(value: unknown): value is string {
  if (typeof value !== 'string' || !value.startsWith('/') || value === '/') return false;
  const segments = value.replace(/\/+$/, '').split('/').slice(1);
  return segments.length > 0 && segments.every((s) => s !== '' && s !== '.' && s !== '..');
}

/** Normalizes an absolute path: no trailing slash. */
export function normalizePath(value: string): string {
  return value.length > 1 ? value.replace(/\/+$/, '') : value;
}

/** True when `inner` is `outer` or lies below it (both absolute, normalized). */
export function isWithin(inner: string, outer: string): boolean {
  const a = normalizePath(inner);
  const b = normalizePath(outer);
  return a === b || a.startsWith(b.endsWith('/') ? b : `${b}/`);
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/** True when a text holds a control character (NUL, line break, tab, ...): never part of a name or path kubedev writes. */
export function hasControlCharacter(value: string): boolean {
  return CONTROL.test(value);
}

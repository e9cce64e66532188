/**
 * validateDevEnvironment(): every problem of a DevEnvironment spec at once, each in the shape
 * `DevEnvironment '<name>': <problem> (got <value>). <fix>.`
 */
import { DEFAULT_RUN_AS_USER, DEFAULT_SSH_PORT, DEFAULT_SYNC_MODE, DevEnvironmentSpec, MAX_NAME_LENGTH, SYNC_MODES, cacheName } from './dev-environment-spec';
import { shapedSpec } from './dev-environment-shape';
import { ResourceRequirements } from './k8s';
import { hasControlCharacter, isAbsoluteSubPath, isDnsLabel, isDnsSubdomain, isPortName, isQuantity, isWithin, normalizePath, parseQuantity } from './names';
import { Problem, Shown, both, problem, show } from './problems';
import { isSafeRemoteRoot, remoteRootProblem } from './remote-root';
import { DEV_MODES, SCALE_ORIGINAL } from './takeover';
import { AUTHORIZED_KEYS_DIR, HOST_KEYS_DIR, SSHD_CONFIG_DIR } from './sshd';
import { CONTROL_DIR, SUPERVISOR_DIR, checkProcess } from './dev-process';

const KIND = 'DevEnvironment';
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const POSIX_USER = /^[a-z_][a-z0-9_-]*$/;

/** Checks a spec; returns every problem found (empty when valid). Never throws. */
export function validateDevEnvironment(spec: DevEnvironmentSpec): string[] {
  return validateDevEnvironmentAt(spec).map((p) => p.message);
}

/** Like validateDevEnvironment(), each problem with the property path it concerns (`ports[1].port`). */
export function validateDevEnvironmentAt(given: DevEnvironmentSpec): Problem[] {
  const name = typeof given?.name === 'string' && given.name !== '' ? given.name : '<unnamed>';
  const out: Problem[] = [];
  const add: Add = (path, what, got, fix) => {
    out.push({ path, message: problem(KIND, name, what, got, fix) });
  };
  const spec = shapedSpec(given, add);
  if (typeof given !== 'object' || given === null || Array.isArray(given)) return out;

  if (!isDnsLabel(spec.name, MAX_NAME_LENGTH)) {
    add('name', `name is not a DNS-1123 label of at most ${MAX_NAME_LENGTH} characters`, spec.name,
      "Use lowercase letters, digits and '-', starting and ending with a letter or digit");
  }
  if (!isDnsLabel(spec.namespace)) {
    add('namespace', 'namespace is not a DNS-1123 label', spec.namespace, "Use lowercase letters, digits and '-', at most 63 characters");
  }
  if (typeof spec.owner !== 'string' || spec.owner.trim() === '') {
    add('owner', 'owner is missing', spec.owner, "Set owner to the developer's user name as the cluster authenticates it");
  }
  if (typeof spec.image !== 'string' || spec.image.trim() === '') {
    add('image', 'image is missing', spec.image, "Set image to the dev container's image, e.g. 'node:20'");
  }
  if (spec.workingDir !== undefined && !isAbsoluteSubPath(spec.workingDir)) {
    add('workingDir', 'workingDir is not an absolute path', spec.workingDir, "Use an absolute path such as '/workspace'");
  }
  if (spec.command !== undefined && spec.command.length === 0) {
    add('command', 'command is empty', spec.command, 'Leave command out for an interactive environment, or give the program to run');
  }
  checkProcess(spec, add);

  checkSync(spec, add);
  checkPorts(spec, add);
  checkEnv(spec, add);
  checkCaches(spec, add);
  checkInherited(spec, add);
  checkResources('resources', spec.resources, add);
  checkResources('sidecar.resources', spec.sidecar?.resources, add);
  for (const [field, size] of [['workspace.size', spec.workspace?.size]] as const) {
    if (size !== undefined && !isQuantity(size)) add(field, `${field} is not a Kubernetes quantity`, size, "Use a size such as '10Gi'");
  }
  if (spec.serviceAccountName !== undefined && !isDnsSubdomain(spec.serviceAccountName)) {
    add('serviceAccountName', 'serviceAccountName is not a DNS-1123 subdomain', spec.serviceAccountName, 'Use the name of a ServiceAccount in the namespace');
  }

  const sshPort = spec.sidecar?.port ?? DEFAULT_SSH_PORT;
  if (!Number.isInteger(sshPort) || sshPort < 1024 || sshPort > 65535) {
    add('sidecar.port', 'sidecar.port is outside 1024-65535', sshPort, `Use an unprivileged port; the default is ${DEFAULT_SSH_PORT}`);
  }
  const user = spec.sidecar?.user;
  if (user !== undefined && (!POSIX_USER.test(user) || user === 'root')) {
    add('sidecar.user', 'sidecar.user is not a non-root user name', user, "Use the image's non-root user, e.g. 'dev'");
  }
  for (const field of ['authorizedKeysSecret', 'hostKeySecret'] as const) {
    const v = spec.sidecar?.[field];
    if (v !== undefined && !isDnsSubdomain(v)) add(`sidecar.${field}`, `sidecar.${field} is not a valid Secret name`, v, 'Use a DNS-1123 subdomain');
  }
  const uid = spec.runAsUser ?? DEFAULT_RUN_AS_USER;
  if (!Number.isInteger(uid) || uid < 1) {
    add('runAsUser', 'runAsUser must be a non-root uid', uid, `Use a uid above 0 (the default is ${DEFAULT_RUN_AS_USER}); to run the dev container as root, set security.runAsRoot`);
  }
  for (const cap of spec.security?.addCapabilities ?? []) {
    if (!/^[A-Z_]+$/.test(cap) || cap === 'ALL') {
      add('security.addCapabilities', 'security.addCapabilities holds an invalid capability', cap, "Name single capabilities without the CAP_ prefix, e.g. 'SYS_PTRACE'");
    }
  }
  for (const [field, map] of [['labels', spec.labels], ['nodeSelector', spec.nodeSelector]] as const) {
    for (const [k, v] of Object.entries(map ?? {})) {
      if (typeof v !== 'string' || v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) {
        add(`${field}.${k}`, `${field} '${k}' has an invalid label value`, v, "Use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit");
      }
    }
  }
  for (const [k, v] of Object.entries(spec.annotations ?? {})) {
    if (typeof v !== 'string') add(`annotations.${k}`, `annotation '${k}' is not a string`, v, 'Give annotation values as strings (JSON.stringify a structure)');
  }
  return out;
}

type Add = (path: string, what: string, got: unknown, fix: string) => void;

/** Where the sidecar mounts its own volumes: no sync folder may be at, inside or above one. */
const SIDECAR_MOUNTS: readonly string[] = [SSHD_CONFIG_DIR, HOST_KEYS_DIR, AUTHORIZED_KEYS_DIR, CONTROL_DIR, SUPERVISOR_DIR, '/tmp'];
/** Characters that make a path a pattern when it becomes an ignore rule (`/<cache>/`). */
const GLOB = /[*?[\]{}!\\]/;

/** Why a local sync path is not a folder inside the project (where kubedev runs), or undefined. */
function localProblem(local: string): [string, string] | undefined {
  const relative = "Give it relative to the project folder kubedev runs in, e.g. '.' or 'api'";
  if (hasControlCharacter(local)) return ['holds a control character (NUL, line break, tab, ...)', relative];
  if (local.startsWith('/') || local.startsWith('~') || /^[A-Za-z]:[\\/]/.test(local) || local.startsWith('\\')) {
    return ['is absolute, so it depends on the machine and may hold anything (a home folder, its keys)', relative];
  }
  let depth = 0;
  for (const s of local.split(/[\\/]/)) {
    if (s === '..') depth--;
    else if (s !== '' && s !== '.') depth++;
    if (depth < 0) return ['leads outside the project folder', relative];
  }
  return undefined;
}

function checkSync(spec: DevEnvironmentSpec, add: Add): void {
  const folders = spec.sync ?? [];
  folders.forEach((f, i) => {
    const n = i + 1;
    if (typeof f.local !== 'string' || f.local.trim() === '') {
      add(`sync[${i}].local`, `sync folder #${n} has no local path`, f.local, "Set local to a folder, e.g. '.'");
    } else {
      const bad = localProblem(f.local);
      if (bad) add(`sync[${i}].local`, `sync folder #${n} local path ${bad[0]}`, f.local, bad[1]);
    }
    const remote = remoteRootProblem(f.remote);
    if (remote) {
      add(`sync[${i}].remote`, `sync folder #${n} remote path ${remote.what}`, f.remote, remote.fix);
    } else {
      for (const m of SIDECAR_MOUNTS) {
        if (isWithin(f.remote, m) || isWithin(m, f.remote)) {
          add(`sync[${i}].remote`, `sync folder #${n} remote path collides with the sync sidecar's own mount '${m}'`, f.remote,
            "Use a folder outside /etc/kubedev and /tmp, e.g. '/workspace'");
          break;
        }
      }
    }
    if (f.ignore !== undefined && (!Array.isArray(f.ignore) || f.ignore.some((p) => typeof p !== 'string' || hasControlCharacter(p)))) {
      add(`sync[${i}].ignore`, `sync folder #${n} ignore is not a list of one-line patterns`, f.ignore, "Give a list of gitignore-style patterns, e.g. ['*.log', 'build/']");
    }
    if (f.mode !== undefined && !SYNC_MODES.includes(f.mode)) {
      add(`sync[${i}].mode`, `sync folder #${n} mode is not one of ${SYNC_MODES.map((m) => `'${m}'`).join(', ')}`, f.mode, "Set mode to 'mirror' (one-way, local wins) or 'two-way'");
    }
    for (const key of ['remoteOwns', 'localOwns'] as const) {
      const globs = f[key];
      if (globs === undefined) continue;
      if (!Array.isArray(globs) || globs.some((p) => typeof p !== 'string' || p.trim() === '' || hasControlCharacter(p))) {
        add(`sync[${i}].${key}`, `sync folder #${n} ${key} is not a list of one-line patterns`, globs, "Give a list of gitignore-style patterns, e.g. ['dist/', 'package-lock.json']");
      } else if (globs.length > 0 && (f.mode ?? DEFAULT_SYNC_MODE) === 'mirror') {
        add(`sync[${i}].${key}`, `sync folder #${n} ${key} needs mode 'two-way' (a mirror sends everything one way)`, globs, "Set mode: 'two-way' on the folder, or drop the patterns");
      }
    }
  });
  for (let i = 0; i < folders.length; i++) {
    for (let j = i + 1; j < folders.length; j++) {
      const a = folders[i].remote;
      const b = folders[j].remote;
      if (!isSafeRemoteRoot(a) || !isSafeRemoteRoot(b)) continue;
      if (isWithin(a, b) || isWithin(b, a)) {
        add(`sync[${j}].remote`, `sync folders #${i + 1} and #${j + 1} map to the same or nested remote paths`, both(a, b),
          'Give each sync folder its own remote path, none inside another');
      } else if (isWithin(a.toLowerCase(), b.toLowerCase()) || isWithin(b.toLowerCase(), a.toLowerCase())) {
        add(`sync[${j}].remote`, `sync folders #${i + 1} and #${j + 1} map to remote paths that are the same or nested but for letter case`, both(a, b),
          'Give each sync folder its own remote path, none inside another whatever the case (a case-insensitive disk would merge them)');
      }
    }
  }
}

function checkPorts(spec: DevEnvironmentSpec, add: Add): void {
  const sshPort = spec.sidecar?.port ?? DEFAULT_SSH_PORT;
  const seenPort = new Map<number, string>();
  const seenName = new Set<string>();
  for (const [i, p] of (spec.ports ?? []).entries()) {
    const label = p.name ?? `port-${p.port}`;
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      add(`ports[${i}].port`, `port '${label}' is outside 1-65535`, p.port, 'Use a port between 1 and 65535');
      continue;
    }
    if (!isPortName(label)) {
      add(`ports[${i}].name`, 'port name is not a valid port name', label, "Use at most 15 lowercase letters, digits and '-', with at least one letter");
    }
    if (seenName.has(label)) add(`ports[${i}].name`, `port name '${label}' is used twice`, label, 'Give each port its own name');
    seenName.add(label);
    if (p.port === sshPort) {
      add(`ports[${i}].port`, `port '${label}' collides with the sync sidecar's SSH port`, p.port, 'Use another port, or move the sidecar with sidecar.port');
    } else if (seenPort.has(p.port)) {
      add(`ports[${i}].port`, `ports '${seenPort.get(p.port)}' and '${label}' use the same port`, p.port, 'Give each port its own number');
    }
    seenPort.set(p.port, label);
  }
}

function checkEnv(spec: DevEnvironmentSpec, add: Add): void {
  const count = new Map<string, number>();
  for (const e of spec.env ?? []) count.set(e.name, (count.get(e.name) ?? 0) + 1);
  for (const [envName, n] of count) {
    if (n > 1) add('env', `env '${envName}' is defined more than once`, new Shown(`${n} definitions`), 'Keep one definition per name');
  }
  for (const [i, e] of (spec.env ?? []).entries()) {
    if (typeof e.name !== 'string' || !ENV_NAME.test(e.name)) {
      add(`env[${i}].name`, 'env name is not a valid variable name', e.name, "Use letters, digits, '_', '-' and '.', not starting with a digit");
      continue;
    }
    const sources = (['value', 'secretKeyRef', 'configMapKeyRef', 'fieldRef'] as const).filter((k) => e[k] !== undefined);
    if (sources.length !== 1) {
      add(`env[${i}]`, `env '${e.name}' must have exactly one of value, secretKeyRef, configMapKeyRef, fieldRef`, sources, 'Keep exactly one source');
    } else if (e.value !== undefined && typeof e.value !== 'string') {
      add(`env[${i}].value`, `env '${e.name}' value is not a string`, e.value, "Quote it: Kubernetes takes environment values as strings, e.g. '3000'");
    }
  }
  for (const [i, f] of (spec.envFrom ?? []).entries()) {
    if ((f.secret === undefined) === (f.configMap === undefined)) {
      add(`envFrom[${i}]`, `envFrom #${i + 1} must name exactly one of secret, configMap`, f, 'Set either secret or configMap');
    }
  }
}

function checkCaches(spec: DevEnvironmentSpec, add: Add): void {
  const caches = spec.caches ?? [];
  const folders = (spec.sync ?? []).map((f) => f.remote).filter(isAbsoluteSubPath).map(normalizePath);
  const names = new Map<string, number>();
  caches.forEach((c, i) => {
    const n = i + 1;
    if (!isAbsoluteSubPath(c.path)) {
      add(`caches[${i}].path`, `cache #${n} path must be an absolute path other than '/'`, c.path, "Use the folder to keep, e.g. '/home/dev/.cache/pip'");
      return;
    }
    if (GLOB.test(c.path) || hasControlCharacter(c.path)) {
      // The path becomes the sync folder's ignore rule `/<path>/`: a pattern there would hide other folders.
      add(`caches[${i}].path`, `cache #${n} path holds a glob or control character (one of * ? [ ] { } ! \\ or a line break)`, c.path,
        "Name one folder literally, e.g. '/home/dev/.cache/pip'");
      return;
    }
    if (c.size !== undefined && !isQuantity(c.size)) add(`caches[${i}].size`, `cache '${c.path}' size is not a Kubernetes quantity`, c.size, "Use a size such as '5Gi'");
    if (c.name !== undefined && !isDnsLabel(c.name, 30)) add(`caches[${i}].name`, `cache '${c.path}' name is not a DNS-1123 label of at most 30 characters`, c.name, "Use lowercase letters, digits and '-'");
    const p = normalizePath(c.path);
    for (const f of folders) {
      if (isWithin(f, p)) {
        add(`caches[${i}].path`, `cache '${c.path}' would hide sync folder '${f}'`, c.path, 'Put the cache inside the sync folder or elsewhere, never at or above it');
      }
    }
    const same = caches.findIndex((o, j) => j < i && isAbsoluteSubPath(o.path) && normalizePath(o.path) === p);
    if (same !== -1) {
      add(`caches[${i}].path`, `caches #${same + 1} and #${n} use the same path`, c.path, 'Give each cache its own path');
      return;
    }
    // The name (given, or derived from the path) makes the PVC name: it must be unique.
    const key = cacheName(c);
    if (names.has(key)) add(`caches[${i}].name`, `caches #${names.get(key)} and #${n} have the same name`, key, 'Set a distinct name on one of them');
    names.set(key, n);
  });
}

/** Mounts and volumes copied from an original workload may not land where kubedev puts its own. */
function checkInherited(spec: DevEnvironmentSpec, add: Add): void {
  const inherit = spec.inherit;
  if (!inherit) return;
  const from = `${inherit.source?.kind ?? 'workload'} '${inherit.source?.name ?? '?'}'`;
  if (inherit.mode !== undefined && !(DEV_MODES as readonly unknown[]).includes(inherit.mode)) {
    add('inherit.mode', `mode is not ${DEV_MODES.map((m) => `'${m}'`).join(' or ')}`, inherit.mode,
      "Use 'replace' (the original runs no pod while the twin exists) or 'side-by-side' (the twin gets its own Service)");
  }
  if (inherit.scaleOriginal !== undefined && !(SCALE_ORIGINAL as readonly unknown[]).includes(inherit.scaleOriginal)) {
    add('inherit.scaleOriginal', `scaleOriginal is not ${SCALE_ORIGINAL.map((m) => `'${m}'`).join(' or ')}`, inherit.scaleOriginal,
      "Use 'output' when the same app writes the original, else 'up' (kubedev up scales it at run time)");
  }
  if (inherit.source?.kind !== 'Deployment' || !isDnsSubdomain(inherit.source.name)) {
    add('inherit.source', 'the original is not a Deployment with a valid name', inherit.source, 'Derive the twin with devModeOf() or DevEnvironment.fromDeployment()');
  }
  if (inherit.source?.namespace !== undefined && !isDnsLabel(inherit.source.namespace)) {
    add('inherit.source.namespace', "the original's namespace is not a DNS-1123 label", inherit.source.namespace, "Give the namespace the original Deployment runs in");
  }
  const own = [...(spec.sync ?? []).map((f) => f.remote), ...(spec.caches ?? []).map((c) => c.path)].filter(isAbsoluteSubPath).map(normalizePath);
  (inherit.volumeMounts ?? []).forEach((m, i) => {
    const at = typeof m.mountPath === 'string' ? normalizePath(m.mountPath) : undefined;
    if (at !== undefined && own.includes(at)) {
      add(`inherit.volumeMounts[${i}].mountPath`, `the mount of volume '${String(m.name)}' inherited from ${from} lands on a sync folder or cache`, m.mountPath,
        'Move the sync folder or cache elsewhere, or drop that mount from the copy');
    }
  });
  (inherit.volumes ?? []).forEach((v, i) => {
    if (typeof v.name === 'string' && v.name.startsWith('kubedev-')) {
      add(`inherit.volumes[${i}].name`, `volume '${v.name}' inherited from ${from} uses a name kubedev keeps for its own volumes`, v.name, "Rename it in the original; names starting with 'kubedev-' are kubedev's");
    }
  });
}

function checkResources(field: string, r: ResourceRequirements | undefined, add: Add): void {
  if (!r) return;
  for (const kind of ['requests', 'limits'] as const) {
    for (const [res, q] of Object.entries(r[kind] ?? {})) {
      if (q !== undefined && !isQuantity(q)) {
        add(`${field}.${kind}.${res}`, `${field}.${kind}.${res} is not a Kubernetes quantity`, q, res === 'cpu' ? "Use a quantity such as '500m' or '2'" : "Use a quantity such as '512Mi' or '2Gi'");
      }
    }
  }
  for (const res of ['cpu', 'memory', 'ephemeral-storage'] as const) {
    const req = r.requests?.[res];
    const lim = r.limits?.[res];
    if (req && lim && isQuantity(req) && isQuantity(lim) && parseQuantity(req) > parseQuantity(lim)) {
      add(`${field}.requests.${res}`, `${field}.requests.${res} is above ${field}.limits.${res}`, new Shown(`${show(req)} > ${show(lim)}`), 'Lower the request or raise the limit');
    }
  }
}

/**
 * validateAttachRecord(): an attach record read back from YAML or the cluster is input, not a command.
 * Every field is checked: first its type, then with lib's own validation of a DevEnvironment, exactly
 * as if the user had written the spec it stands for. Each problem names the record field at fault.
 */
import { DevEnvironmentSpec, ENVIRONMENT_LABEL, OnSyncHookSpec, PortSpec, ReversePortSpec, SyncFolderSpec } from './dev-environment-spec';
import { CONTROL_DIR } from './dev-process';
import { validateDevEnvironmentAt } from './dev-environment-validate';
import { hasControlCharacter, isDnsLabel, isDnsSubdomain } from './names';
import { show } from './problems';

const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const FIX = 'Synthesize the file again with kubedev; never edit the record by hand';

/** Where a spec field lives in the record. */
function recordPath(specPath: string): string {
  return specPath
    .replace(/^sync\[/, 'folders[')
    .replace(/^sidecar\./, 'ssh.')
    .replace(/^workingDir$/, 'workspace')
    .replace(/^command$/, 'process.command')
    .replace(/^onSync\[/, 'hooks[');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Every problem of a parsed record, each `attach record field '<path>': <problem> (got <value>). <fix>.`
 * Empty when the record is one kubedev could have written.
 */
export function validateAttachRecord(record: unknown): string[] {
  const out: string[] = [];
  const bad = (field: string, what: string, got: unknown, fix = FIX): void => {
    out.push(`attach record field '${field}' ${what} (got ${show(got)}). ${fix}.`);
  };
  if (!isObject(record)) {
    bad('(the record)', 'is not a JSON object', record);
    return out;
  }
  const r = record;
  const str = (field: string, v: unknown): boolean => {
    if (typeof v === 'string' && v !== '' && !hasControlCharacter(v)) return true;
    bad(field, v === undefined ? 'is missing' : 'is not a one-line text', v);
    return false;
  };
  // Types first: the lib checks below may then read every field safely.
  for (const f of ['name', 'namespace', 'container', 'sidecar', 'workspace'] as const) str(f, r[f]);
  for (const f of ['container', 'sidecar'] as const) {
    if (typeof r[f] === 'string' && r[f] !== '' && !isDnsLabel(r[f])) bad(f, 'is not a container name (DNS-1123 label)', r[f]);
  }
  const workload = r.workload;
  if (!isObject(workload) || !['StatefulSet', 'Deployment'].includes(workload.kind as string) || !isDnsSubdomain(workload.name)) {
    bad('workload', 'is not a StatefulSet or Deployment with a valid name', workload);
  }
  if (r.pod !== undefined && !isDnsSubdomain(r.pod)) bad('pod', 'is not a pod name (DNS-1123 subdomain)', r.pod);
  if (!isObject(r.selector) || Object.entries(r.selector).some(([k, v]) => !LABEL_KEY.test(k) || typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))) {
    bad('selector', 'is not a map of label keys to label values', r.selector);
  } else if (r.selector[ENVIRONMENT_LABEL] !== r.name) {
    // An empty or foreign selector would find some other pod (`kubectl get pods -l ...`).
    bad('selector', `does not select the environment's own label ${ENVIRONMENT_LABEL}=${String(r.name)}`, r.selector);
  }
  const ssh = r.ssh;
  if (!isObject(ssh)) {
    bad('ssh', ssh === undefined ? 'is missing' : 'is not an object', ssh);
  } else {
    if (typeof ssh.port !== 'number') bad('ssh.port', 'is not a number', ssh.port);
    for (const f of ['user', 'hostKeySecret', 'authorizedKeysSecret', 'hostKeyPublicKey'] as const) str(`ssh.${f}`, ssh[f]);
    if (typeof ssh.hostKeyPublicKey === 'string' && ssh.hostKeyPublicKey !== '' && !SECRET_KEY.test(ssh.hostKeyPublicKey)) {
      bad('ssh.hostKeyPublicKey', 'is not a key name of a Secret', ssh.hostKeyPublicKey);
    }
  }
  let folders: SyncFolderSpec[] = [];
  if (!Array.isArray(r.folders) || r.folders.length === 0) {
    bad('folders', 'holds no sync folder', r.folders, 'Declare at least one sync folder and synthesize the file again');
  } else {
    r.folders.forEach((f: unknown, i) => {
      if (!isObject(f)) return bad(`folders[${i}]`, 'is not an object', f);
      const ok = [str(`folders[${i}].local`, f.local), str(`folders[${i}].remote`, f.remote)].every(Boolean);
      const ignoreOk = Array.isArray(f.ignore) && f.ignore.every((p) => typeof p === 'string');
      if (!ignoreOk) bad(`folders[${i}].ignore`, 'is not a list of patterns', f.ignore);
      // mode, remoteOwns and localOwns are checked by lib below (as the spec's sync[i] fields).
      const optOk = (f.mode === undefined || typeof f.mode === 'string')
        && [f.remoteOwns, f.localOwns].every((g) => g === undefined || (Array.isArray(g) && g.every((p) => typeof p === 'string')));
      if (!optOk) bad(`folders[${i}]`, 'has a mode that is not text or ownership patterns that are not a list of text', { mode: f.mode, remoteOwns: f.remoteOwns, localOwns: f.localOwns });
      if (ok && ignoreOk && optOk) folders.push(f as unknown as SyncFolderSpec);
    });
    if (folders.length !== r.folders.length) folders = [];
  }
  let ports: PortSpec[] = [];
  if (!Array.isArray(r.ports)) {
    bad('ports', 'is not a list', r.ports);
  } else {
    r.ports.forEach((p: unknown, i) => {
      if (!isObject(p) || typeof p.port !== 'number' || typeof p.name !== 'string' || !['TCP', 'UDP', 'SCTP'].includes(p.protocol as string)) {
        bad(`ports[${i}]`, 'is not a port (name, port number, protocol TCP, UDP or SCTP)', p);
      } else {
        ports.push(p as unknown as PortSpec);
      }
    });
    if (ports.length !== r.ports.length) ports = [];
  }
  if (r.takeOver !== undefined) {
    const t = r.takeOver;
    if (!isObject(t) || t.kind !== 'Deployment' || !isDnsSubdomain(t.name) || !isDnsLabel(t.namespace)) {
      bad('takeOver', 'is not a Deployment with a valid name and namespace', t);
    }
  }
  const proc = checkProcessFields(r, bad);
  if (out.length > 0) return out;

  // Then lib's validation, as if the user had written the spec the record was made from.
  const s = ssh as Record<string, unknown>;
  const spec = {
    name: r.name, namespace: r.namespace, owner: 'record', image: 'record',
    workingDir: r.workspace, sync: folders, ports,
    sidecar: { port: s.port, user: s.user, hostKeySecret: s.hostKeySecret, authorizedKeysSecret: s.authorizedKeysSecret },
    ...proc,
  } as DevEnvironmentSpec;
  const prefix = `DevEnvironment '${r.name as string}': `;
  for (const p of validateDevEnvironmentAt(spec)) {
    const text = p.message.startsWith(prefix) ? p.message.slice(prefix.length) : p.message;
    out.push(`attach record field '${recordPath(p.path)}': ${text}`);
  }
  return out;
}

type Bad = (field: string, what: string, got: unknown, fix?: string) => void;

/** The types of process, hooks and reverse (all optional: records of earlier kubedevs have none); their spec fields for lib's checks. */
function checkProcessFields(r: Record<string, unknown>, bad: Bad): Partial<DevEnvironmentSpec> {
  const out: { command?: readonly string[]; onSync?: OnSyncHookSpec[]; reverse?: ReversePortSpec[] } = {};
  const p = r.process;
  if (p !== undefined) {
    if (!isObject(p) || !Array.isArray(p.command) || !p.command.every((c) => typeof c === 'string')) {
      bad('process', 'is not a process (command: a list of words, control: a folder)', p);
    } else if (p.control !== CONTROL_DIR) {
      // The runner writes requests into <control>/control over SSH: any other path is refused.
      bad('process.control', `is not kubedev's control folder '${CONTROL_DIR}'`, p.control);
    } else if (p.command.length > 0) {
      out.command = p.command as string[];
    }
  }
  if (r.hooks !== undefined) {
    if (!Array.isArray(r.hooks)) {
      bad('hooks', 'is not a list', r.hooks);
    } else {
      const hooks: OnSyncHookSpec[] = [];
      r.hooks.forEach((h: unknown, i) => {
        if (!isObject(h) || !Array.isArray(h.paths) || (h.run !== undefined && typeof h.run !== 'string') || (h.restart !== undefined && h.restart !== true)) {
          bad(`hooks[${i}]`, 'is not a hook (paths, and run or restart: true)', h);
        } else {
          hooks.push(h as unknown as OnSyncHookSpec);
        }
      });
      if (hooks.length === r.hooks.length) out.onSync = hooks;
    }
  }
  if (r.reverse !== undefined) {
    if (!Array.isArray(r.reverse) || !r.reverse.every((x) => isObject(x) && typeof x.name === 'string' && typeof x.remote === 'number' && typeof x.local === 'number')) {
      bad('reverse', 'is not a list of reverse forwards (name, remote, local)', r.reverse);
    } else {
      out.reverse = r.reverse as unknown as ReversePortSpec[];
    }
  }
  return out;
}

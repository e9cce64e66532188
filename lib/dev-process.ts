/**
 * The dev process: where the supervisor and its control channel live in the pod, and the checks of
 * `command`, `onSync` and `reverse` (in lib's message shape, called by validateDevEnvironmentAt()).
 */
import { DEFAULT_SSH_PORT, DevEnvironmentSpec, isInteractive } from './dev-environment-spec';
import { hasControlCharacter, isPortName } from './names';

/** Where the dev container mounts the supervisor and the hook scripts (from the environment's ConfigMap). */
export const SUPERVISOR_DIR = '/etc/kubedev/supervisor';
export const SUPERVISOR_FILE = 'supervisor.sh';
/** The shared in-memory folder both containers mount: the control FIFO the supervisor reads, hook logs. */
export const CONTROL_DIR = '/etc/kubedev/control';
/** The FIFO inside CONTROL_DIR; one request per line (`restart`, `stop`, `batch <id> <step>...`). */
export const CONTROL_FIFO = 'control';
/** Lines the supervisor prints about itself start with this (on the dev container's log, between the process's lines). */
export const EVENT_PREFIX = '[kubedev] ';

/** The ConfigMap key (and file under SUPERVISOR_DIR) of the n-th hook's command (0-based). */
export function hookFile(index: number): string {
  return `hook-${index}.sh`;
}

type Add = (path: string, what: string, got: unknown, fix: string) => void;

const isString = (v: unknown): v is string => typeof v === 'string';

/** Checks command, onSync and reverse; assumes shapedSpec() has dropped fields of the wrong shape. */
export function checkProcess(spec: DevEnvironmentSpec, add: Add): void {
  if (spec.command !== undefined && spec.command.some((c) => c === '' || c.includes('\0'))) {
    add('command', 'command holds an empty word or a NUL', spec.command, "Give the program and its arguments as separate non-empty words, e.g. ['npm', 'run', 'dev']");
  }
  const hasProcess = !isInteractive(spec.command, spec.args);
  (spec.onSync ?? []).forEach((h, i) => {
    const n = i + 1;
    const at = `onSync[${i}]`;
    if (!Array.isArray(h.paths) || h.paths.length === 0 || !h.paths.every((p) => isString(p) && p.trim() !== '' && !hasControlCharacter(p))) {
      add(`${at}.paths`, `onSync #${n} paths is not a non-empty list of one-line patterns`, h.paths, "Give gitignore-style patterns relative to the sync folder, e.g. ['package.json', 'package-lock.json']");
    }
    const hasRun = h.run !== undefined;
    const hasRestart = h.restart === true;
    if (hasRun === hasRestart) {
      add(at, `onSync #${n} must have exactly one of run, restart`, { run: h.run, restart: h.restart }, "Set run to a shell command (e.g. 'npm ci') or restart: true");
    } else if (hasRun && (!isString(h.run) || h.run.trim() === '' || h.run.includes('\0'))) {
      add(`${at}.run`, `onSync #${n} run is not a shell command`, h.run, "Give the command as one string, e.g. 'npm ci'");
    } else if (hasRestart && !hasProcess) {
      add(`${at}.restart`, `onSync #${n} restarts the dev process, but no command is declared`, h.restart, "Declare command (the dev process), or use run instead of restart");
    }
    if (h.restart !== undefined && typeof h.restart !== 'boolean') {
      add(`${at}.restart`, `onSync #${n} restart is not true or false`, h.restart, 'Set restart: true, or leave it out');
    }
  });
  const ssh = spec.sidecar?.port ?? DEFAULT_SSH_PORT;
  const declared = new Set((spec.ports ?? []).map((p) => p.port));
  const seen = new Set<number>();
  (spec.reverse ?? []).forEach((r, i) => {
    const label = r.name ?? `reverse-${String(r.remote)}`;
    const at = `reverse[${i}]`;
    if (!Number.isInteger(r.remote) || r.remote < 1024 || r.remote > 65535) {
      add(`${at}.remote`, `reverse forward '${label}' remote port is outside 1024-65535`, r.remote, 'Use an unprivileged port: the sidecar listens as a non-root user');
      return;
    }
    if (r.local !== undefined && (!Number.isInteger(r.local) || r.local < 1 || r.local > 65535)) {
      add(`${at}.local`, `reverse forward '${label}' local port is outside 1-65535`, r.local, 'Use the port your local service listens on');
    }
    if (!isPortName(label)) add(`${at}.name`, 'reverse forward name is not a valid port name', label, "Use at most 15 lowercase letters, digits and '-', with at least one letter");
    if (r.remote === ssh || declared.has(r.remote) || seen.has(r.remote)) {
      add(`${at}.remote`, `reverse forward '${label}' remote port is already taken (the SSH port, a declared port or another reverse forward)`, r.remote, 'Give it a port of its own');
    }
    seen.add(r.remote);
  });
}

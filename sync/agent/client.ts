/**
 * The client side of the agent, in `kubedev sync --once` before the CLI loads (bin/kubedev.js): it
 * hands the run to the user's agent when one listens, and relays the run's output, signals and exit
 * code. When none listens, or it declines, the run happens in this process as before and, if that
 * run succeeded, an agent is left for the next one (sync/agent/server.ts).
 *
 * Only node's net, fs, os, path and child_process are loaded here: this is every agent-served run's
 * whole start-up on top of node's own.
 */
import { spawn, StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { AgentGo, AgentRequest, AgentSignal, Frame, FrameReader } from './frames';
import { AGENT_MAIN, agentAllowed, socketPath } from './where';

/** How long an agent may take to take a run (it answers from its event loop at once: ~1 ms). */
const ANSWER_MS = 3000;

/** Whether a run may go to an agent: `kubedev sync ... --once`, and the user has not turned it off. */
export function servable(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  return argv[0] === 'sync' && argv.includes('--once') && !argv.includes('--help') && !argv.includes('-h') && agentAllowed(env);
}

function request(argv: readonly string[]): AgentRequest {
  return {
    v: 1,
    argv,
    cwd: process.cwd(),
    tty: { stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true, columns: process.stderr.columns },
  };
}

/** How an attempt to use the agent ended: its exit code, or why the run must happen here. */
export type AgentOutcome = { readonly code: number } | { readonly here: 'absent' | 'declined' | 'lost' };

/**
 * Runs `argv` in the agent at `socket`. Resolves with the run's exit code; or, with nothing written
 * yet, with why this process must run it itself.
 */
export function viaAgent(argv: readonly string[], socket: string | undefined = socketPath()): Promise<AgentOutcome> {
  if (!socket) return Promise.resolve({ here: 'declined' });
  let req: AgentRequest;
  try {
    req = request(argv);
  } catch {
    return Promise.resolve({ here: 'declined' }); // no working folder (removed): it has none to name
  }
  return new Promise((resolve) => {
    const sock = net.connect(socket);
    let wrote = false;
    /** The agent was told to begin (after that, this process never runs the command itself). */
    let went = false;
    let outcome: AgentOutcome | undefined;
    let signals = 0;
    const onSignal = (signal: AgentSignal['signal']): void => {
      // The first asks the agent to stop after the batch in flight (as an in-process run would);
      // a second leaves at once (the agent stops the run when this side closes).
      if (++signals > 1) process.exit(130);
      if (!sock.destroyed) sock.write(`${JSON.stringify({ signal } satisfies AgentSignal)}\n`);
    };
    const onInt = (): void => onSignal('SIGINT');
    const onTerm = (): void => onSignal('SIGTERM');
    const finish = (o: AgentOutcome): void => {
      clearTimeout(answer);
      outcome ??= o;
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
      sock.destroy();
      resolve(outcome);
    };
    const reader = new FrameReader((type, body) => {
      if (type === Frame.Stdout || type === Frame.Stderr) {
        wrote = true;
        (type === Frame.Stdout ? process.stdout : process.stderr).write(body);
      } else if (type === Frame.Exit) {
        const code = Number(body.toString('utf8'));
        finish({ code: Number.isInteger(code) && code >= 0 && code < 256 ? code : 1 });
      } else if (type === Frame.Started && !outcome && !went) {
        // From here the run is the agent's: this process will not run it itself.
        clearTimeout(answer);
        went = true;
        sock.write(`${JSON.stringify({ go: true } satisfies AgentGo)}\n`);
      } else if (type === Frame.Decline && !wrote) finish({ here: 'declined' }); // before the run, or a run it does not serve (NotServed: nothing done)
    });
    // An agent that does not answer at once is wedged: the run happens here (no new agent is left).
    const answer = setTimeout(() => finish({ here: 'declined' }), ANSWER_MS);
    let connected = false;
    sock.once('connect', () => {
      connected = true;
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      sock.write(`${JSON.stringify(req)}\n`);
    });
    sock.on('data', (b: Buffer) => reader.push(b));
    // No socket, or a stale one nobody listens on: no agent. Later errors end in 'close' below.
    sock.on('error', () => {
      if (!connected) finish({ here: 'absent' });
    });
    sock.once('close', () => {
      if (outcome) return;
      if (!went) return finish({ here: 'lost' });
      process.stderr.write("kubedev: the background agent stopped before the run ended; run the command again (KUBEDEV_AGENT=off runs without an agent)\n");
      finish({ code: 1 });
    });
  });
}

/**
 * The agent's node options. A young generation of at most 2 MB a half (V8's default grows it to 16 MB):
 * a run streams its bytes through short-lived buffers (the local tar's reads, ssh2's packets), and in a
 * process whose earlier runs grew the young generation those buffers are promoted and taken back by
 * mark-compacts, about ten a first mirror of 132 MB; a fresh process, or one whose young generation
 * was given back (memory.ts, 6 s after a run), takes them back in scavenges. Measured here, whole
 * processes, runs 2 s apart, medians of 11: that first mirror 1.17 -> 0.94 s (4 MB: 1.10 -> 0.97 s);
 * 7 s apart, 0.99 -> 0.95 s.
 */
const AGENT_NODE_OPTIONS = ['--max-semi-space-size=2'];

/**
 * Starts an agent for the next runs (detached: it outlives this process, holds none of its streams),
 * asked to open the connections `argv` names now, so the next run finds them ready.
 */
export function leaveAgent(argv: readonly string[], socket: string | undefined = socketPath()): void {
  if (!socket) return;
  try {
    const devNull = fs.openSync('/dev/null', 'r+');
    try {
      const child = spawn(process.execPath, [...AGENT_NODE_OPTIONS, AGENT_MAIN, socket, JSON.stringify(request(argv))], { detached: true, stdio: agentStdio(devNull), cwd: '/', env: process.env });
      child.on('error', () => undefined);
      child.unref();
    } finally {
      fs.closeSync(devNull);
    }
  } catch {
    // no agent: the next run is served in its own process, as this one was
  }
}

/** O_CLOEXEC in /proc's fdinfo flags (octal): an fd without it survives exec. */
const O_CLOEXEC = 0o2000000;
/** The highest inherited descriptor the agent's start covers (an array entry per slot up to it). */
const MAX_COVERED = 1024;

/**
 * The agent's stdio: /dev/null for 0-2, and /dev/null over every other descriptor this process would
 * pass on. A process inherits the descriptors its parent left without close-on-exec (a CI step's
 * capture pipe, a wrapper's status pipe, make's jobserver), and node passes them on to its children:
 * an agent holding one keeps the parent's pipe open for its whole life, and whatever waits for that
 * pipe's end (the wrapper that started `kubedev sync --once`) hangs. Linux says which descriptors are
 * inherited (fdinfo's flags); elsewhere every open one is covered (node's own close on exec anyway).
 */
export function agentStdio(devNull: number, fds: readonly number[] = passedOn()): StdioOptions {
  const stdio: StdioOptions = ['ignore', 'ignore', 'ignore'];
  for (const fd of fds) {
    if (fd < 3 || fd > MAX_COVERED || fd === devNull) continue;
    while (stdio.length < fd) stdio.push('ignore');
    stdio[fd] = devNull;
  }
  return stdio;
}

/** Descriptors of this process that its children inherit (all open ones where the system does not say). */
function passedOn(): number[] {
  try {
    return fs
      .readdirSync('/proc/self/fdinfo')
      .map(Number)
      .filter((fd) => {
        try {
          const flags = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
          return flags !== null && (parseInt(flags[1], 8) & O_CLOEXEC) === 0;
        } catch {
          return false; // closed meanwhile (the listing's own descriptor)
        }
      });
  } catch {
    try {
      return fs.readdirSync('/dev/fd').map(Number).filter(Number.isInteger);
    } catch {
      return [];
    }
  }
}

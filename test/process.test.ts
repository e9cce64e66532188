/**
 * The runner's side of the supervisor, pure: which steps a batch triggers, how log lines parse, and
 * that only our own requests are ever quoted into a command for the sidecar.
 */
import { hookSteps, parseProcessLine, requestCommand } from '../sync/attach/process';

const hooks = [
  { paths: ['package.json', 'package-lock.json'], run: 'npm ci' },
  { paths: ['src/**', '!src/**/*.test.js'], restart: true as const },
  { paths: ['*.proto'], run: 'make gen' },
  { paths: ['*.js'], restart: true as const },
];

describe('hookSteps', () => {
  test('declared order, each hook once, restart once', () => {
    expect(hookSteps(hooks, ['package.json', 'src/a.js', 'api/x.proto', 'src/b.js'])).toEqual(['run:0', 'restart', 'run:2']);
  });
  test('gitignore semantics: a negated pattern excludes, a bare name matches at any depth', () => {
    expect(hookSteps(hooks, ['src/a.test.js'])).toEqual(['restart']);
    expect(hookSteps(hooks, ['web/package.json'])).toEqual(['run:0']);
    expect(hookSteps(hooks, ['README.md'])).toEqual([]);
  });
  test('unknown paths (a mass change): every hook', () => {
    expect(hookSteps(hooks, undefined)).toEqual(['run:0', 'restart', 'run:2']);
  });
});

describe('parseProcessLine', () => {
  test('events and output', () => {
    expect(parseProcessLine('[kubedev] crashed 3 1 2')).toEqual({ event: { kind: 'crashed', gen: 3, code: 1, retryInSeconds: 2 } });
    expect(parseProcessLine('[kubedev] hook b2 run:0 failed 4')).toEqual({ event: { kind: 'hook', batch: 'b2', step: 'run:0', state: 'failed', code: 4 } });
    expect(parseProcessLine('[kubedev] batch b2 done')).toEqual({ event: { kind: 'batch-done', batch: 'b2' } });
    expect(parseProcessLine('listening on :3000')).toEqual({ output: 'listening on :3000' });
  });
});

describe('requestCommand', () => {
  test('quotes a request for the FIFO', () => {
    expect(requestCommand('/etc/kubedev/control', 'batch b1 run:0 restart')).toBe(
      `timeout 5 sh -c 'test -p "$0" || exit 3; printf "%s\\n" "$1" > "$0"' '/etc/kubedev/control/control' 'batch b1 run:0 restart'`,
    );
  });
  test('refuses anything but our own requests', () => {
    expect(() => requestCommand('/etc/kubedev/control', "restart'; rm -rf ~; '")).toThrow('not a supervisor request');
    expect(() => requestCommand("/tmp/x'; id; '", 'restart')).toThrow('not a control folder');
  });
});

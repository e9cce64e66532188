/**
 * The per-folder sync mode and ownership globs in the model: defaults, validation (lib's message shape),
 * the attach record (written only when not the default, validated on read), and `--mode` on the CLI.
 */
import { Testing } from 'cdk8s';
import { testChart } from './support/cdk8s';
import { DevEnvironment } from '../constructs/dev-environment';
import { attachRecordOf, DevEnvironmentSpec, KubeObject, readAttachRecord, renderDevEnvironment, validateDevEnvironment } from '../lib';
import { validateAttachRecord } from '../lib/attach-validate';
import { resolveSessions } from '../sync/cli/sync';
import { UsageError } from '../sync/errors';

const minimal: DevEnvironmentSpec = { name: 'api', namespace: 'team-web', owner: 'alice@example.com', image: 'node:20' };
const twoWay: DevEnvironmentSpec = { ...minimal, sync: [{ local: '.', remote: '/workspace', mode: 'two-way', remoteOwns: ['dist/', 'package-lock.json'], localOwns: ['src/'] }] };

describe('model', () => {
  test('mirror is the default and is not written into the record', () => {
    const folder = attachRecordOf(minimal).folders[0];
    expect(folder).toEqual({ local: '.', remote: '/workspace', ignore: [] });
  });

  test('two-way and the ownership globs reach the attach record', () => {
    expect(validateDevEnvironment(twoWay)).toEqual([]);
    expect(attachRecordOf(twoWay).folders[0]).toEqual({ local: '.', remote: '/workspace', ignore: [], mode: 'two-way', remoteOwns: ['dist/', 'package-lock.json'], localOwns: ['src/'] });
  });

  test('a bad mode, bad globs and globs on a mirror are refused, each in lib\'s message shape', () => {
    const bad = { ...minimal, sync: [
      { local: '.', remote: '/a', mode: 'both' },
      { local: 'b', remote: '/b', mode: 'two-way', remoteOwns: ['ok', 'two\nlines'] },
      { local: 'c', remote: '/c', localOwns: ['src/'] },
    ] } as unknown as DevEnvironmentSpec;
    expect(validateDevEnvironment(bad)).toEqual([
      "DevEnvironment 'api': sync folder #1 mode is not one of 'mirror', 'two-way' (got 'both'). Set mode to 'mirror' (one-way, local wins) or 'two-way'.",
      "DevEnvironment 'api': sync folder #2 remoteOwns is not a list of one-line patterns (got [\"ok\",\"two\\nlines\"]). Give a list of gitignore-style patterns, e.g. ['dist/', 'package-lock.json'].",
      "DevEnvironment 'api': sync folder #3 localOwns needs mode 'two-way' (a mirror sends everything one way) (got [\"src/\"]). Set mode: 'two-way' on the folder, or drop the patterns.",
    ]);
  });

  test('cdk8s passes the mode through: its record equals lib\'s', () => {
    const chart = testChart();
    new DevEnvironment(chart, 'api', twoWay);
    const synth = Testing.synth(chart) as KubeObject[];
    const sts = (objs: KubeObject[]) => objs.find((o) => o.kind === 'StatefulSet') as KubeObject;
    expect(readAttachRecord(sts(synth), 'cdk8s')).toEqual(readAttachRecord(sts(renderDevEnvironment(twoWay)), 'lib'));
    expect(readAttachRecord(sts(synth), 'cdk8s').folders[0].mode).toBe('two-way');
  });

  test('a record with a forged mode is refused on read, naming the record field', () => {
    const record = JSON.parse(JSON.stringify(attachRecordOf(twoWay)));
    record.folders[0].mode = 'rm -rf /';
    expect(validateAttachRecord(record)).toEqual([
      "attach record field 'folders[0].mode': sync folder #1 mode is not one of 'mirror', 'two-way' (got 'rm -rf /'). Set mode to 'mirror' (one-way, local wins) or 'two-way'.",
    ]);
    record.folders[0].mode = 7;
    expect(validateAttachRecord(record)[0]).toMatch(/^attach record field 'folders\[0\]' has a mode that is not text/);
  });
});

describe('--mode', () => {
  const base = { local: '.', remote: '/workspace', host: 'h', port: '22', user: 'u', identity: __filename, knownHosts: __filename };
  test('a bad --mode is a usage error naming the flag', () => {
    expect(() => resolveSessions({ ...base, mode: 'sideways' })).toThrow(new UsageError("--mode must be 'mirror' or 'two-way' (got 'sideways'). Pass --mode mirror (one-way, local wins) or --mode two-way"));
  });
});

/**
 * readAttachRecord(): a record read back from a file or the cluster is validated field by field, with
 * lib's own validation, as if the user had written it. A forged record is bad input, never a command.
 */
import { ATTACH_ANNOTATION, AttachRecordError, DevEnvironmentSpec, KubeObject, readAttachRecord, renderDevEnvironment } from '../lib';

const spec: DevEnvironmentSpec = { name: 'web', namespace: 'team-a', owner: 'alice', image: 'node:20', sync: [{ local: 'src', remote: '/workspace' }], ports: [{ name: 'http', port: 3000 }] };
const sts = renderDevEnvironment(spec).find((o) => o.kind === 'StatefulSet') as KubeObject;
const good = JSON.parse(sts.metadata.annotations![ATTACH_ANNOTATION]) as Record<string, any>;
const ID = "StatefulSet 'web' in f.yaml";

function withRecord(record: unknown): KubeObject {
  return { ...sts, metadata: { ...sts.metadata, annotations: { [ATTACH_ANNOTATION]: JSON.stringify(record) } } };
}

/** The message readAttachRecord throws for a record changed by `patch`, or 'accepted'. */
function read(patch: (r: Record<string, any>) => unknown): string {
  const r = structuredClone(good);
  const out = patch(r);
  try {
    readAttachRecord(withRecord(out === undefined ? r : out), 'f.yaml');
    return 'accepted';
  } catch (e) {
    expect(e).toBeInstanceOf(AttachRecordError);
    return (e as Error).message;
  }
}

test('the record kubedev writes is read back as written', () => {
  expect(readAttachRecord(sts, 'f.yaml')).toEqual(good);
  expect(read(() => undefined)).toBe('accepted');
});

describe('a forged or damaged record: one message per field, naming it', () => {
  test("remote '/', a system folder, a path that is not normalized", () => {
    expect(read((r) => { r.folders[0].remote = '/'; })).toBe(
      `${ID}: attach record field 'folders[0].remote': sync folder #1 remote path is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'.`,
    );
    expect(read((r) => { r.folders[0].remote = '/etc'; })).toBe(
      `${ID}: attach record field 'folders[0].remote': sync folder #1 remote path is the system folder '/etc' (got '/etc'). Mirror into a folder of its own, e.g. '/workspace'.`,
    );
    expect(read((r) => { r.folders[0].remote = '/workspace/../..'; })).toBe(
      `${ID}: attach record field 'folders[0].remote': sync folder #1 remote path is not a normalized path ('.' or '..' segments, '//' or a trailing '/') (got '/workspace/../..'). Write it without them, e.g. '/workspace'.`,
    );
  });

  test('ssh.port 0, 99999, 22.5 or a text', () => {
    for (const port of [0, 99999, 22.5]) {
      expect(read((r) => { r.ssh.port = port; })).toBe(
        `${ID}: attach record field 'ssh.port': sidecar.port is outside 1024-65535 (got ${port}). Use an unprivileged port; the default is 2222.`,
      );
    }
    expect(read((r) => { r.ssh.port = '2222'; })).toBe(
      `${ID}: attach record field 'ssh.port' is not a number (got '2222'). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
  });

  test('ignore that is not a list of strings; a folder that is not an object; no folders', () => {
    expect(read((r) => { r.folders[0].ignore = { '*.log': true }; })).toBe(
      `${ID}: attach record field 'folders[0].ignore' is not a list of patterns (got {"*.log":true}). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.folders[0].ignore = ['a\nb']; })).toBe(
      `${ID}: attach record field 'folders[0].ignore': sync folder #1 ignore is not a list of one-line patterns (got ["a\\nb"]). Give a list of gitignore-style patterns, e.g. ['*.log', 'build/'].`,
    );
    expect(read((r) => { r.folders = ['src']; })).toBe(
      `${ID}: attach record field 'folders[0]' is not an object (got 'src'). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.folders = {}; })).toBe(
      `${ID}: attach record field 'folders' holds no sync folder (got {}). Declare at least one sync folder and synthesize the file again.`,
    );
  });

  test('local folders outside the project', () => {
    expect(read((r) => { r.folders[0].local = '../../..'; })).toBe(
      `${ID}: attach record field 'folders[0].local': sync folder #1 local path leads outside the project folder (got '../../..'). Give it relative to the project folder kubedev runs in, e.g. '.' or 'api'.`,
    );
  });

  test('names with odd characters: namespace, pod, container, user, Secrets, selector', () => {
    expect(read((r) => { r.namespace = 'team-a; rm -rf /'; })).toBe(
      `${ID}: attach record field 'namespace': namespace is not a DNS-1123 label (got 'team-a; rm -rf /'). Use lowercase letters, digits and '-', at most 63 characters.`,
    );
    expect(read((r) => { r.pod = '../../api/v1/secrets'; })).toBe(
      `${ID}: attach record field 'pod' is not a pod name (DNS-1123 subdomain) (got '../../api/v1/secrets'). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.container = '--all'; })).toBe(
      `${ID}: attach record field 'container' is not a container name (DNS-1123 label) (got '--all'). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.ssh.user = 'root'; })).toBe(
      `${ID}: attach record field 'ssh.user': sidecar.user is not a non-root user name (got 'root'). Use the image's non-root user, e.g. 'dev'.`,
    );
    expect(read((r) => { r.ssh.hostKeySecret = 'x\ny'; })).toBe(
      `${ID}: attach record field 'ssh.hostKeySecret' is not a one-line text (got 'x\ny'). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.selector = {}; })).toBe(
      `${ID}: attach record field 'selector' does not select the environment's own label kubedev.io/environment=web (got {}). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.selector = { 'kubedev.io/environment': 'a b' }; })).toBe(
      `${ID}: attach record field 'selector' is not a map of label keys to label values (got {"kubedev.io/environment":"a b"}). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
  });

  test('ports and the workspace', () => {
    expect(read((r) => { r.ports = [{ name: 'http', port: 0, protocol: 'TCP' }]; })).toBe(
      `${ID}: attach record field 'ports[0].port': port 'http' is outside 1-65535 (got 0). Use a port between 1 and 65535.`,
    );
    expect(read((r) => { r.ports = [{ name: 'http', port: 80, protocol: 'HTTP' }]; })).toBe(
      `${ID}: attach record field 'ports[0]' is not a port (name, port number, protocol TCP, UDP or SCTP) (got {"name":"http","port":80,"protocol":"HTTP"}). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
    expect(read((r) => { r.workspace = 'relative'; })).toBe(
      `${ID}: attach record field 'workspace': workingDir is not an absolute path (got 'relative'). Use an absolute path such as '/workspace'.`,
    );
  });

  test('not an object at all, and several problems at once', () => {
    expect(read(() => [1])).toMatch(/attach record version undefined is not supported/);
    expect(read((r) => { r.ssh.port = 0; r.folders[0].remote = '/'; })).toBe([
      `${ID}: 2 problems in the attach record:`,
      "  - attach record field 'folders[0].remote': sync folder #1 remote path is '/', the whole file system (got '/'). Mirror into a folder of its own, e.g. '/workspace'.",
      "  - attach record field 'ssh.port': sidecar.port is outside 1024-65535 (got 0). Use an unprivileged port; the default is 2222.",
    ].join('\n'));
  });
});

describe('never a raw TypeError: every field of the record replaced by every kind of value', () => {
  const values: unknown[] = [null, 0, -1, 1.5, 99999, '', 'x', '/', 'a\nb', [], ['x'], [null], {}, { a: 1 }, true];
  /** Every path to a value inside the record (objects and arrays walked). */
  function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
    const here = at.length > 0 ? [at] : [];
    if (Array.isArray(v)) return [...here, ...v.flatMap((x, i) => paths(x, [...at, i]))];
    if (v && typeof v === 'object') return [...here, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, k]))];
    return here;
  }
  const all = paths(good);

  test.each(all.map((p) => [p.join('.'), p]))('%s', (_name, p) => {
    for (const value of [...values, undefined]) {
      const r = structuredClone(good);
      let o: any = r;
      for (const k of (p as (string | number)[]).slice(0, -1)) o = o[k];
      const last = (p as (string | number)[])[(p as (string | number)[]).length - 1];
      if (value === undefined) delete o[last];
      else o[last] = value;
      try {
        readAttachRecord(withRecord(r), 'f.yaml');
      } catch (e) {
        if (!(e instanceof AttachRecordError)) throw new Error(`${p.join('.')} = ${JSON.stringify(value)}: ${(e as Error).stack}`);
      }
    }
  });
});

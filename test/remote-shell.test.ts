/**
 * The two-way pass's long-lived remote shell: commands sent at once run in order, and each gets exactly
 * its own output and exit code, however the bytes of several frames arrive (one chunk holding the end
 * of one frame and the start of the next, a frame split across many chunks, NULs and markers' look-alikes
 * in the output).
 */
import { Connection } from '../sync/engine/transport';
import { RemoteShell } from '../sync/engine/two-way/remote-shell';
import { useArena } from './support/hostile';

jest.setTimeout(30_000);
const { sshd } = useArena();

test('pipelined commands: in order, each with its own stdout and exit code', async () => {
  const s = sshd();
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  const shell = await RemoteShell.open(conn);
  try {
    const order: number[] = [];
    const cmds = [
      "printf 'a\\0b'",
      'exit 7',
      'head -c 1000000 /dev/zero | tr "\\0" x',
      "printf '\\0KUBEDEV-END-0000000000000000 3\\0tail'",
      'cat; echo "stdin is not the channel: $?"',
      'printf ""',
    ];
    const results = await Promise.all(cmds.map((c, i) => shell.run(c).then((r) => {
      order.push(i);
      return r;
    })));
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    expect(results[0]).toMatchObject({ code: 0, stdout: Buffer.from('a\0b') });
    expect(results[1].code).toBe(7);
    expect(results[2].stdout.length).toBe(1_000_000);
    expect(results[2].stdout.every((c) => c === 0x78)).toBe(true);
    expect(results[3].stdout.toString('latin1')).toBe('\0KUBEDEV-END-0000000000000000 3\0tail');
    expect(results[4].stdout.toString()).toBe('stdin is not the channel: 0\n');
    expect(results[5]).toMatchObject({ code: 0, stdout: Buffer.alloc(0) });
    // And one at a time after that.
    expect((await shell.run('echo again')).stdout.toString()).toBe('again\n');
  } finally {
    shell.close();
    await conn.close();
  }
});

test('the shell says whether it reads its commands a byte at a time (bash does, from a pipe; dash does not)', async () => {
  const s = sshd();
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  try {
    for (const [command, bytewise] of [['exec sh', false], ['exec bash', true]] as const) {
      const shell = await RemoteShell.open(conn, command);
      expect(shell.bytewise).toBeUndefined(); // not known before its first answer
      await shell.run('true');
      expect([command, shell.bytewise]).toEqual([command, bytewise]);
      shell.close();
    }
  } finally {
    await conn.close();
  }
});

/**
 * The test environment: Node's, plus the removal of the temporary folders a test file made with
 * tempDir (test/support/trees.ts) once the file is done, after every hook of its own (a folder an
 * sshd of the file still uses is removed after that sshd was closed).
 */
const fs = require('node:fs');
const { TestEnvironment } = require('jest-environment-node');

class KubedevEnvironment extends TestEnvironment {
  async teardown() {
    const dirs = this.global.kubedevTempDirs;
    for (const d of dirs ?? []) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
      } catch {
        // a folder a test made unremovable: left, as before
      }
    }
    await super.teardown();
  }
}

module.exports = KubedevEnvironment;

/**
 * The package test (`npm run test:package`, run by .ci/run after `npm test`, on this machine's Node
 * and on Node 22 and 24): packs this repository and installs the tarball into fresh projects.
 * It takes a minute or two, so it is not part of `npm test`.
 */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/package'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 600_000,
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};

/** End-to-end suite on a real pod runtime (podman): `npm run e2e`. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/e2e'],
  testMatch: ['**/*.e2e.ts'],
  testTimeout: 600_000,
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};

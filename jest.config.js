/** Unit and integration tests: `npm test`. The podman end-to-end suite lives in jest.e2e.config.js. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // test/package/ is the package test: its own config (jest.package.config.js), `npm run test:package`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/package/'],
  testTimeout: 60_000,
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};

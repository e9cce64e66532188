/** Unit and integration tests: `npm test`. The podman end-to-end suite lives in jest.e2e.config.js. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: '<rootDir>/test/support/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // test/package/ is the package test (jest.package.config.js, `npm run test:package`); test/sweeps/ the
  // sweeps (jest.sweeps.config.js, `npm run test:sweeps`). Both run in .ci/run after this suite.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/package/', '<rootDir>/test/sweeps/'],
  testTimeout: 60_000,
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};

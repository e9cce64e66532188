/**
 * The sweeps (`npm run test:sweeps`; `.ci/run` runs them after `npm test`): matrices that repeat one
 * safety check over every step of a pass (the connection cut at each, in turn) or over every change the
 * container can make at a precise step (churn). About five minutes on 2 cores, so not part of `npm test`,
 * which keeps one representative of each race (test/two-way-torture.test.ts, test/hostile/delta.test.ts,
 * test/sync-session.test.ts).
 */
const base = require('./jest.config.js');

module.exports = {
  ...base,
  roots: ['<rootDir>/test/sweeps'],
  testPathIgnorePatterns: ['/node_modules/'],
};

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // `@streamcast/*` imports resolve to each package's src/index.ts (the `streamcast-source`
  // condition of its exports map), never to a dist/ build that may be stale.
  testEnvironmentOptions: { customExportConditions: ['streamcast-source', 'node', 'node-addons'] },
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testMatch: ['<rootDir>/packages/*/src/**/*.test.ts', '<rootDir>/apps/*/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/packages/testing/src/global-setup.ts',
  globalTeardown: '<rootDir>/packages/testing/src/global-teardown.ts',
  // Two cores: two workers; each test file starts its own gateways.
  maxWorkers: 2,
  testTimeout: 60_000,
};

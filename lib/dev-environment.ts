/** The DevEnvironment model: spec and defaults, validation, rendering. */
export * from './dev-environment-spec';
export * from './dev-environment-validate';
export * from './dev-environment-render';

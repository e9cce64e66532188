/** cdk8s constructs over kubedev's model. */
export * from './dev-environment';
export * from './rendered-object';
export * from './team-namespace';
export * from './developer-access';

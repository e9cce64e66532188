/** Pulumi ComponentResources over kubedev's model. The team-namespaces program lives in ./team-namespaces. */
export * from './kube';
export * from './dev-environment';
export * from './team-namespace';

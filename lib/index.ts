/** kubedev's model: framework-free specs, validation and rendering to plain Kubernetes JSON. */
export * from './k8s';
export * from './problems';
export * from './names';
export * from './attach';
export * from './sshd';
export * from './remote-root';
export * from './dev-environment';
export * from './dev-mode';
export * from './rbac';
export * from './team-namespace';
export * from './developer-access';
export * from './dev-process';
export * from './supervisor';
export * from './takeover';

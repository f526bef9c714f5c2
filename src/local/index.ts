/** The local runner: a whole mesh on one machine. See docs/local.md. */
export * from './plan';
export * from './topology';
export * from './local-sidecar-config';
export * from './local-mesh';
export * from './load-driver';
export * from './mesh-stats';
export * from './driver-stats';
export * from './stat-table';
export * from './demo-verdict';
export * from './demo';
export * from './proxy-bundle';
export * from './prometheus-text';
export * from './managed-process';
export * from './loopback-addresses';
export * from './netns-network';
export * from './certificate-authority';

/** Transparent interception: the iptables script of the init container and its command line. */
export * from './options';
export * from './script';
export * from './args';

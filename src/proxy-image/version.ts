/** The proxy's version, printed by --version. */
export const PROXY_VERSION = '0.1.0';

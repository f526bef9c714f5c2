import { readFileSync } from 'node:fs';
import * as path from 'node:path';

/**
 * The version of the typemesh package, read from its package.json. The sidecar image tag
 * defaults to it, so the constructs and the proxy they deploy are released together.
 * src/constructs and lib/constructs are both two levels below the package root.
 */
export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

/** The default sidecar image: `ghcr.io/typemesh/proxy:<package version>`. */
export const DEFAULT_SIDECAR_IMAGE = `ghcr.io/typemesh/proxy:${PACKAGE_VERSION}`;

/**
 * undici, evaluated on first use. HTTP/1.1 upstreams go through the lean client of ./http1, so
 * a sidecar whose services are all HTTP/1.1 and that sends no passthrough traffic never needs
 * undici: loading it on demand (esbuild keeps a required module lazy in the bundle) keeps its
 * module code and its WebAssembly parser out of such a sidecar's heap.
 */
import type * as Undici from 'undici';

let undici: typeof Undici | undefined;

/** The undici module, loaded at the first call. */
export function loadUndici(): typeof Undici {
  if (!undici) undici = require('undici') as typeof Undici;
  return undici;
}

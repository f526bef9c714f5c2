/** Inbound request vetting: path normalization, then authorization. */
export * from './path';
export * from './authorizer';

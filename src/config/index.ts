export * from './schema';
export * from './validate';
export * from './json-schema';
export * from './identity';

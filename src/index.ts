/**
 * TypeMesh: a service mesh in TypeScript. Constructs for cdk8s (and Pulumi), the sidecar
 * config contract, and the local runner.
 *
 * @packageDocumentation
 */
export * from './config';
export * from './constructs';
export * from './local';

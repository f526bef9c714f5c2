/**
 * The few Reflect metadata functions that tsyringe (a dependency of @peculiar/x509) checks
 * for at load time. The `reflect-metadata` package is not a dependency of this project and
 * nothing here relies on emitted decorator metadata, so a small WeakMap-backed store is
 * enough. Import this module before @peculiar/x509.
 */
type MetadataStore = WeakMap<object, Map<PropertyKey | undefined, Map<unknown, unknown>>>;

const store: MetadataStore = new WeakMap();
const R = Reflect as unknown as Record<string, unknown>;

function own(target: object, key: PropertyKey | undefined, create: boolean): Map<unknown, unknown> | undefined {
  let byKey = store.get(target);
  if (!byKey) {
    if (!create) return undefined;
    byKey = new Map();
    store.set(target, byKey);
  }
  let meta = byKey.get(key);
  if (!meta && create) {
    meta = new Map();
    byKey.set(key, meta);
  }
  return meta;
}

if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (metadataKey: unknown, value: unknown, target: object, key?: PropertyKey) => {
    own(target, key, true)!.set(metadataKey, value);
  };
  R.getOwnMetadata = (metadataKey: unknown, target: object, key?: PropertyKey) => own(target, key, false)?.get(metadataKey);
  R.getMetadata = (metadataKey: unknown, target: object, key?: PropertyKey): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
      const m = own(t, key, false);
      if (m?.has(metadataKey)) return m.get(metadataKey);
    }
    return undefined;
  };
  R.hasMetadata = (metadataKey: unknown, target: object, key?: PropertyKey) => (R.getMetadata as (...a: unknown[]) => unknown)(metadataKey, target, key) !== undefined;
  R.metadata = (metadataKey: unknown, value: unknown) => (target: object, key?: PropertyKey) => {
    own(target, key, true)!.set(metadataKey, value);
  };
}

export {};

// What a middleware works out for a request and a later step reads back (the cache lookup, the
// rate-limit decision), kept on the request's own object (the event, middy's request) under a
// private symbol. Not a WeakMap keyed by the request: an entry whose key lives for one request
// costs far more (V8 tracks every WeakMap entry through each garbage collection) than a property
// that goes with its object; with 50 chat requests in flight (bench/warm-path.bench.ts) the
// cache's lookups alone in a WeakMap cost 4 to 8% of the throughput.

export interface RequestSlot<K extends object, V> {
  get(owner: K): V | undefined;
  set(owner: K, value: V): void;
}

/** A slot of its own (a new symbol, named `description` for debugging): two slots never collide. */
export function requestSlot<K extends object, V>(description: string): RequestSlot<K, V> {
  const slot = Symbol(description);
  return {
    get: (owner) => (owner as Record<symbol, V | undefined>)[slot],
    set: (owner, value) => {
      (owner as Record<symbol, V>)[slot] = value;
    },
  };
}

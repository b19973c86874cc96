// The embedding cache on a real Redis, standalone and a 3-master cluster: float32 vectors back
// bit for bit with their TTL, misses, and a batch of 256 read or written in one round trip (one
// per node on a cluster, with key slots computed as Redis does).

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../shared/redis-cluster.ts';
import { readVectors, writeVectors, type CacheEntry } from '../../shared/embeddings/cache.ts';
import { embeddingKey } from '../../shared/keys.ts';
import { withRedis } from '../../shared/redis.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { startRedisCluster, type RedisCluster } from '../support/redis.ts';
import { startRoundTripProxy, type RoundTripProxy } from '../support/round-trip-proxy.ts';

/** Random float32 bit patterns (NaNs excluded: their payload is not guaranteed to survive arithmetic), plus the edge values. */
function awkwardVector(dimensions: number, seed: number): Float32Array {
  const bits = new Uint32Array(dimensions);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < dimensions; i += 1) {
    do {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      bits[i] = state >>> 0;
    } while ((bits[i]! & 0x7f800000) === 0x7f800000);
  }
  const vector = new Float32Array(bits.buffer);
  vector.set([-0, 1.401298464324817e-45, -3.4028234663852886e38, 1e-40], 0);
  return vector;
}

const bitsOf = (vector: Float32Array | undefined) => (vector === undefined ? undefined : Array.from(new Uint32Array(vector.slice().buffer)));

function entries(count: number, dimensions: number, label: string): CacheEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    key: embeddingKey(`test-model:${dimensions}`, `${label} text ${i}`, 'everyone'),
    vector: awkwardVector(dimensions, i + 1),
  }));
}

describe('the embedding cache on a standalone Redis', () => {
  const redis = useStandaloneRedis();
  let proxy: RoundTripProxy;
  beforeAll(async () => {
    proxy = await startRoundTripProxy(redis.server.port);
  });
  afterAll(() => proxy.close());

  it('gives back, bit for bit, the float32 vectors it stored, at 4 bytes a dimension', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const stored = entries(3, 1536, 'bits');

    await withRedis((client) => writeVectors(client, stored, 60));
    const read = await withRedis((client) => readVectors(client, stored.map((entry) => entry.key), 1536));

    expect(read.map(bitsOf)).toEqual(stored.map((entry) => bitsOf(entry.vector)));
    expect(await redis.admin.strlen(stored[0]!.key)).toBe(1536 * 4);
  });

  it('stores every vector with the given time to live', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const stored = entries(2, 8, 'ttl');

    await withRedis((client) => writeVectors(client, stored, 120));

    for (const { key } of stored) {
      const ttl = await redis.admin.pttl(key);
      expect(ttl).toBeGreaterThan(110_000);
      expect(ttl).toBeLessThanOrEqual(120_000);
    }
  });

  it('answers a miss for absent keys and for values of another size', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const [short] = entries(1, 16, 'short');
    await redis.admin.set(short!.key, Buffer.alloc(15 * 4));

    const read = await withRedis((client) => readVectors(client, [short!.key, embeddingKey('test-model:16', 'never stored', 'everyone')], 16));

    expect(read).toEqual([undefined, undefined]);
  });

  it('reads a batch of 256 keys in one round trip and writes 256 misses in one round trip', async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const batch = entries(256, 64, 'round-trips');
    await withRedis((client) => client.ping()); // connected before counting
    proxy.reset();

    const before = await withRedis((client) => readVectors(client, batch.map((entry) => entry.key), 64));
    const afterRead = proxy.roundTrips();
    await withRedis((client) => writeVectors(client, batch, 60));
    const afterWrite = proxy.roundTrips();

    expect(before.every((vector) => vector === undefined)).toBe(true);
    expect(afterRead).toBe(1);
    expect(afterWrite - afterRead).toBe(1);
  });
});

describe('the embedding cache on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let proxies: RoundTripProxy[];
  let admin: Redis;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    // Each node tells clients to reach it through its proxy, so every round trip is counted.
    proxies = await Promise.all(cluster.nodes.map((node) => startRoundTripProxy(node.port)));
    await announceProxies(cluster, proxies);
    admin = new Redis({ port: cluster.nodes[0]!.port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await useEnvironment({});
    admin.disconnect();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await cluster.stop();
  });

  const clusterEnv = () => ({ REDIS_URL: `redis://127.0.0.1:${proxies[0]!.port}`, REDIS_CLUSTER: 'true' });

  it('computes the slot of a key as Redis does', async () => {
    const keys = ['plain', 'tc:{e:abc}:model:8', '{}empty-tag', 'a{b}c{d}', '{unclosed', 'ünïcödé{tåg}', embeddingKey('m:384', 'x', 'everyone')];

    const slots = await Promise.all(keys.map((key) => admin.cluster('KEYSLOT', key)));

    expect(keys.map(keySlot)).toEqual(slots);
  });

  it('spreads the keys of one batch over every node', async () => {
    const batch = entries(64, 8, 'spread');
    const ranges = await admin.cluster('SLOTS');

    const nodes = new Set(batch.map((entry) => ranges.find(([from, to]) => keySlot(entry.key) >= from && keySlot(entry.key) <= to)?.[2]?.[1]));

    expect(nodes.size).toBe(3);
  });

  it('gives back, bit for bit, a batch spread over three nodes', async () => {
    await useEnvironment(clusterEnv());
    const stored = entries(40, 384, 'cluster-bits');

    await withRedis((client) => writeVectors(client, stored, 60));
    const read = await withRedis((client) => readVectors(client, [...stored.map((entry) => entry.key), 'tc:{e:absent}:x'], 384));

    expect(read.map(bitsOf)).toEqual([...stored.map((entry) => bitsOf(entry.vector)), undefined]);
  });

  it('reads and writes a batch of 256 in one round trip per node, all nodes at once', async () => {
    await useEnvironment(clusterEnv());
    const batch = entries(256, 64, 'cluster-round-trips');
    await withRedis((client) => client.ping()); // slot map loaded before counting
    await withRedis((client) => readVectors(client, batch.map((entry) => entry.key), 64)); // one connection per node
    for (const proxy of proxies) proxy.reset();

    await withRedis((client) => readVectors(client, batch.map((entry) => entry.key), 64));
    const reads = proxies.map((proxy) => proxy.roundTrips());
    for (const proxy of proxies) proxy.reset();
    await withRedis((client) => writeVectors(client, batch, 60));
    const writes = proxies.map((proxy) => proxy.roundTrips());

    expect(reads).toEqual([1, 1, 1]);
    expect(writes).toEqual([1, 1, 1]);
  });
});

/** Sets each node's announced port to its proxy's and waits until every node's slot map says so. */
async function announceProxies(cluster: RedisCluster, proxies: RoundTripProxy[]): Promise<void> {
  const clients = cluster.nodes.map((node) => new Redis({ port: node.port, host: '127.0.0.1' }));
  try {
    await Promise.all(clients.map((client, i) => client.config('SET', 'cluster-announce-port', String(proxies[i]!.port))));
    const proxyPorts = new Set(proxies.map((proxy) => proxy.port));
    const deadline = Date.now() + 15_000;
    for (;;) {
      const maps = await Promise.all(clients.map((client) => client.cluster('SLOTS')));
      if (maps.every((map) => map.every(([, , master]) => master !== undefined && proxyPorts.has(master[1])))) return;
      if (Date.now() > deadline) throw new Error('the cluster did not announce the proxy ports');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    for (const client of clients) client.disconnect();
  }
}

// The embedding cache in Redis: one string key per text, its value the vector's raw float32
// little-endian bytes (4 bytes a dimension; a JSON array takes about five times that). A request
// reads all its keys in one round trip and writes all its misses in one round trip:
//
//   standalone:  MGET k1 … kn                          -> one round trip
//                SET k PX ttl × misses (one pipeline)   -> one round trip
//   cluster:     the keys are grouped by the node serving their slot; one pipeline per node, all
//                nodes at once -> one round trip per node, the slowest node sets the latency.
//
// Why not one hash tag for the whole cache (one slot, so one MGET even in a cluster)? Then every
// vector would live in one slot on one node: the largest data set here could never use more than
// one node's memory, and that node would take every embeddings request. Spreading by the text's
// digest costs at most one round trip per node, in parallel.
//
// The cache is an optimisation: a value of the wrong size is treated as a miss (and overwritten),
// and a failed write is logged, not fatal; the vectors were computed and the client gets them.

import type { Cluster } from 'ioredis';
import { log } from '../logger.ts';
import type { RedisClient } from '../redis.ts';
import { groupByNode, isCluster } from '../redis-cluster.ts';
import { bytesToVector, vectorToBytes } from './float32.ts';

export interface CacheEntry {
  key: string;
  vector: Float32Array;
}

/** The cached vectors of `keys`, position by position; undefined for a miss or a value of the wrong size. */
export async function readVectors(redis: RedisClient, keys: string[], dimensions: number): Promise<Array<Float32Array | undefined>> {
  if (keys.length === 0) return [];
  const values = isCluster(redis) ? await readFromCluster(redis, keys) : await redis.mgetBuffer(keys);
  return values.map((value) => {
    const vector = value === null ? undefined : bytesToVector(value);
    return vector?.length === dimensions ? vector : undefined;
  });
}

async function readFromCluster(cluster: Cluster, keys: string[]): Promise<Array<Buffer | null>> {
  const values = new Array<Buffer | null>(keys.length).fill(null);
  const groups = await groupByNode(cluster, keys);
  await Promise.all(
    groups.map(async ({ positions }) => {
      const pipeline = cluster.pipeline();
      for (const position of positions) pipeline.getBuffer(keys[position]!);
      const replies = (await pipeline.exec()) ?? [];
      replies.forEach(([error, value], i) => {
        // A key whose slot is moving answers with an error: a miss, not a failed request.
        if (error === null && Buffer.isBuffer(value)) values[positions[i]!] = value;
      });
    }),
  );
  return values;
}

/** Stores every entry with the TTL, in one pipelined round trip (one per node in a cluster). */
export async function writeVectors(redis: RedisClient, entries: CacheEntry[], ttlSeconds: number): Promise<void> {
  if (entries.length === 0) return;
  const groups = await groupByNode(redis, entries.map((entry) => entry.key));
  const ttlMs = ttlSeconds * 1000;
  const failures = await Promise.all(
    groups.map(async ({ positions }) => {
      const pipeline = redis.pipeline();
      for (const position of positions) {
        const { key, vector } = entries[position]!;
        pipeline.set(key, vectorToBytes(vector), 'PX', ttlMs);
      }
      const replies = (await pipeline.exec()) ?? [];
      return replies.filter(([error]) => error !== null).length;
    }),
  );
  const failed = failures.reduce((sum, count) => sum + count, 0);
  if (failed > 0) log.warn('embedding cache writes failed', { failed, of: entries.length });
}

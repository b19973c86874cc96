// What a Redis deployment says about itself, read the same way by the scheduled flush (its
// telemetry) and the operator tools (doctor, migration): INFO's fields, the nodes that hold data
// (every master of a cluster, or the one server), and how a node is named.

import type { Redis } from 'ioredis';
import type { RedisClient } from './redis.ts';
import { isCluster } from './redis-cluster.ts';

/**
 * `field:value` lines of an INFO (or CLUSTER INFO) reply; section headers and blank lines are
 * skipped. Values are trimmed, so that a comparison such as `cluster_state` is `ok` does not
 * depend on stray whitespace.
 */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** The nodes that hold data: every master of a cluster, or the one server. */
export async function dataNodes(client: RedisClient): Promise<Redis[]> {
  if (!isCluster(client)) return [client];
  // Until the slots are known, a cluster's node list holds only the seed.
  if (client.status !== 'ready') await client.ping();
  return client.nodes('master');
}

/** Where a node listens; what its options leave out is ioredis's own default. */
export function nodeEndpoint(node: Redis): { host: string; port: number } {
  return { host: node.options.host ?? 'localhost', port: node.options.port ?? 6379 };
}

/** A node as `host:port`, the name operators and the connection metrics know it by. */
export function nodeAddress(node: Redis): string {
  const { host, port } = nodeEndpoint(node);
  return `${host}:${port}`;
}

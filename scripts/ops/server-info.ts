// What a Redis server says about itself in INFO, for every master of a cluster or the one server.
// Only INFO is relied on (managed services such as ElastiCache and Upstash restrict CONFIG);
// CONFIG GET adds detail where it is allowed.

import type { Redis } from 'ioredis';
import type { RedisClient } from '../../shared/redis.ts';
import { dataNodes, nodeAddress, parseInfo } from '../../shared/redis-info.ts';

export interface NodeInfo {
  address: string;
  info: Map<string, string>;
  /** `CONFIG GET save`, or undefined where CONFIG is not allowed. */
  save: string | undefined;
}

/** The keys of one database (`db3:keys=10,expires=2,avg_ttl=0`), summed over the nodes (a cluster's masters). */
export function keyCounts(nodes: readonly NodeInfo[], database: number): { keys: number; expires: number } {
  let keys = 0;
  let expires = 0;
  for (const node of nodes) {
    const line = node.info.get(`db${database}`) ?? '';
    keys += Number(/keys=(\d+)/.exec(line)?.[1] ?? 0);
    expires += Number(/expires=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return { keys, expires };
}

/** Keys evicted since the nodes started (INFO's `evicted_keys`), summed; 0 where INFO hides it. */
export function evictedKeys(nodes: readonly NodeInfo[]): number {
  return nodes.reduce((sum, node) => sum + Number(node.info.get('evicted_keys') ?? 0), 0);
}

async function configValue(node: Redis, name: string): Promise<string | undefined> {
  try {
    const reply = (await node.config('GET', name)) as string[];
    return reply[1];
  } catch {
    return undefined;
  }
}

async function nodeInfo(node: Redis): Promise<NodeInfo> {
  const [text, save] = await Promise.all([node.info(), configValue(node, 'save')]);
  const info = parseInfo(text);
  if (info.get('cluster_enabled') === '1') {
    // cluster_state and friends are only in CLUSTER INFO.
    for (const [name, value] of parseInfo(String(await node.cluster('INFO')))) info.set(name, value);
  }
  return { address: nodeAddress(node), info, save };
}

export async function serverInfo(client: RedisClient): Promise<NodeInfo[]> {
  return Promise.all((await dataNodes(client)).map(nodeInfo));
}

// Redis Cluster routing, for the code that sends many single-key commands at once (the embedding
// cache, the operator tools): which node holds which key, so that a batch goes out as one
// pipeline per node (one round trip per node, all nodes at once). ioredis refuses a cluster
// pipeline whose keys live on different nodes, and accepts one whose slots one node serves.

import type { Cluster } from 'ioredis';
import type { RedisClient } from './redis.ts';

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

// CRC16/XMODEM (polynomial 0x1021), the checksum Redis Cluster uses for key slots. The table is
// built on first use: every function imports this module, few ever compute a slot.
let crc16Table: Uint16Array | undefined;

function crc16TableOnce(): Uint16Array {
  if (crc16Table === undefined) {
    crc16Table = new Uint16Array(256);
    for (let byte = 0; byte < 256; byte += 1) {
      let crc = byte << 8;
      for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
      crc16Table[byte] = crc & 0xffff;
    }
  }
  return crc16Table;
}

function crc16(bytes: Uint8Array): number {
  const table = crc16TableOnce();
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) ^ table[((crc >> 8) ^ byte) & 0xff]!) & 0xffff;
  return crc;
}

/** The cluster slot of a key: only the first non-empty `{hash tag}` counts, as in Redis. */
export function keySlot(key: string | Buffer): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const open = bytes.indexOf(0x7b); // {
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % 16384;
  }
  return crc16(bytes) % 16384;
}

/** Positions in a batch of keys that one master serves, named `host:port` as ioredis names it; undefined for a slot the client does not know yet. */
export interface NodeGroup {
  node: string | undefined;
  positions: number[];
}

/**
 * The positions of `keys`, grouped by the master node that serves their slot: one group on a
 * single server. The slot map is loaded on the client's first connection; until then, one cheap
 * command waits for it.
 */
export async function groupByNode(client: RedisClient, keys: ReadonlyArray<string | Buffer>): Promise<NodeGroup[]> {
  if (!isCluster(client)) return [{ node: undefined, positions: keys.map((_, position) => position) }];
  if (client.slots.length === 0) await client.ping();
  const groups = new Map<string, NodeGroup>();
  keys.forEach((key, position) => {
    const node = client.slots[keySlot(key)]?.[0];
    // A slot missing from the map (mid-resharding) gets a pipeline of its own; ioredis follows the redirect.
    const name = node ?? `unmapped:${position}`;
    const group = groups.get(name);
    if (group) group.positions.push(position);
    else groups.set(name, { node, positions: [position] });
  });
  return [...groups.values()];
}

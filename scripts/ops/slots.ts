// Which cluster node holds a key, so that the migration can send one pipeline per node (ioredis
// refuses a cluster pipeline whose keys live on different nodes). The slot is CRC16/XMODEM of
// the key's hash tag, or of the whole key, modulo 16384, as in the Redis Cluster specification.

import type { RedisClient } from '../../shared/redis.ts';
import { isCluster } from './server-info.ts';

const TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte += 1) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  TABLE[byte] = crc;
}

function crc16(bytes: Buffer, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i += 1) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

export function keySlot(key: Buffer): number {
  const open = key.indexOf(0x7b); // {
  if (open !== -1) {
    const close = key.indexOf(0x7d, open + 1); // }
    // An empty tag "{}" does not count: the whole key is hashed.
    if (close > open + 1) return crc16(key, open + 1, close) % 16384;
  }
  return crc16(key, 0, key.length) % 16384;
}

/**
 * The positions of `keys` grouped by the node that serves them: one group for a single server,
 * one per master for a cluster (from the client's current slot map).
 */
export function groupByNode(client: RedisClient, keys: Buffer[]): number[][] {
  if (!isCluster(client)) return [keys.map((_, index) => index)];
  const groups = new Map<string, number[]>();
  keys.forEach((key, index) => {
    const node = client.slots[keySlot(key)]?.join(',') ?? 'unknown';
    let group = groups.get(node);
    if (group === undefined) groups.set(node, (group = []));
    group.push(index);
  });
  return [...groups.values()];
}

// Which Redis Cluster node holds which key, so that a batch of single-key commands can go out as
// one pipeline per node (one round trip per node, all nodes at once). ioredis accepts a pipeline
// whose keys span several slots as long as one node serves them all.

import type { Cluster } from 'ioredis';

// CRC16/XMODEM (polynomial 0x1021), the checksum Redis Cluster uses for key slots.
const CRC16_TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte += 1) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  CRC16_TABLE[byte] = crc & 0xffff;
}

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!) & 0xffff;
  return crc;
}

/** The cluster slot of a key: only the first non-empty `{hash tag}` counts, as in Redis. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // {
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % 16384;
  }
  return crc16(bytes) % 16384;
}

/**
 * The positions of `keys`, grouped by the master node that serves their slot. The slot map is
 * loaded on the client's first connection; until then, one cheap command waits for it.
 */
export async function groupByNode(cluster: Cluster, keys: string[]): Promise<number[][]> {
  if (cluster.slots.length === 0) await cluster.ping();
  const groups = new Map<string, number[]>();
  keys.forEach((key, position) => {
    // A slot missing from the map (mid-resharding) gets a pipeline of its own; ioredis follows the redirect.
    const node = cluster.slots[keySlot(key)]?.[0] ?? `unmapped:${position}`;
    const group = groups.get(node);
    if (group) group.push(position);
    else groups.set(node, [position]);
  });
  return [...groups.values()];
}

// What a Redis server says about itself in INFO, for every master of a cluster or the one server.
// Only INFO is relied on (managed services such as ElastiCache and Upstash restrict CONFIG);
// CONFIG GET adds detail where it is allowed.

import type { Redis } from 'ioredis';
import type { RedisClient } from '#shared/redis.ts';
import { dataNodes, nodeAddress, parseInfo } from '#shared/redis-info.ts';

export interface NodeInfo {
  address: string;
  info: Map<string, string>;
  /** `CONFIG GET save`, or undefined where CONFIG is not allowed. */
  save: string | undefined;
  /**
   * Why INFO was refused (`NOPERM`: an ACL without it, as a user granted `-@dangerous` is;
   * `unknown command`: renamed or disabled), in which case `info` is empty; undefined when it answered.
   */
  infoRefused: string | undefined;
  /**
   * A cluster master's slots as its CLUSTER NODES line lists them (`0-5460 7000`), and those it is
   * handing over or taking in now (a resharding); undefined for a single server, or where CLUSTER
   * NODES is refused.
   */
  slots: { served: string; moving: number[] } | undefined;
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

/** Why INFO was refused on one of the nodes (`NOPERM`, `unknown command`); undefined when every node answered it. */
export function infoRefusal(nodes: readonly NodeInfo[]): string | undefined {
  return nodes.find((node) => node.infoRefused !== undefined)?.infoRefused;
}

/**
 * The slots on the move between the nodes' masters (a resharding), each once: a slot on the move
 * shows on both masters, the one handing it over and the one taking it in.
 */
export function movingSlots(nodes: readonly NodeInfo[]): number[] {
  return [...new Set(nodes.flatMap((node) => node.slots?.moving ?? []))].sort((a, b) => a - b);
}

/** `slot 14604 moving between masters`, `slots 1, 2, 3, 4, 5, ... moving between masters`. */
export function describeMovingSlots(slots: readonly number[]): string {
  const listed = `${slots.slice(0, 5).join(', ')}${slots.length > 5 ? ', ...' : ''}`;
  return `slot${slots.length === 1 ? '' : 's'} ${listed} moving between masters`;
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

/** INFO's text, or why this user may not run it: what a managed service or an ACL refuses, the tools do without. */
async function infoText(node: Redis): Promise<{ text: string; refused?: undefined } | { text: ''; refused: string }> {
  try {
    return { text: await node.info() };
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    if (error.message.startsWith('NOPERM')) return { text: '', refused: 'NOPERM' };
    if (/unknown command/i.test(error.message)) return { text: '', refused: 'unknown command' };
    throw error;
  }
}

/**
 * The node's own line of CLUSTER NODES: `<id> <address> myself,master <master> <ping> <pong>
 * <epoch> <link> <slot or range>...`, where a slot on the move reads `[slot->-<id>]` (leaving) or
 * `[slot-<-<id>]` (arriving).
 */
async function slotsOf(node: Redis): Promise<NodeInfo['slots']> {
  let text: string;
  try {
    text = String(await node.cluster('NODES'));
  } catch {
    return undefined;
  }
  const own = text.split('\n').find((line) => line.split(' ')[2]?.split(',').includes('myself'));
  const fields = own?.trim().split(' ').slice(8) ?? [];
  return {
    served: fields.filter((field) => !field.startsWith('[')).join(' '),
    moving: fields.filter((field) => field.startsWith('[')).map((field) => Number.parseInt(field.slice(1), 10)),
  };
}

async function nodeInfo(node: Redis): Promise<NodeInfo> {
  const [{ text, refused }, save] = await Promise.all([infoText(node), configValue(node, 'save')]);
  const info = parseInfo(text);
  let slots: NodeInfo['slots'];
  if (info.get('cluster_enabled') === '1') {
    // cluster_state and friends are only in CLUSTER INFO.
    for (const [name, value] of parseInfo(String(await node.cluster('INFO')))) info.set(name, value);
    slots = await slotsOf(node);
  }
  return { address: nodeAddress(node), info, save, infoRefused: refused, slots };
}

export async function serverInfo(client: RedisClient): Promise<NodeInfo[]> {
  return Promise.all((await dataNodes(client)).map(nodeInfo));
}

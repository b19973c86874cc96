// The two ends of a migration: each connected and described (what its nodes say in INFO), and
// whether they are one database, which a copy onto itself would damage (with the copy by type,
// stream consumer groups are dropped).

import { randomBytes } from 'node:crypto';
import type { RedisClient } from '#shared/redis.ts';
import { databaseOf } from '#shared/redis-url.ts';
import { connectTo } from './connection.ts';
import { describeEndpoint, type OperatorEndpoint } from './endpoint.ts';
import { infoRefusal, keyCounts, serverInfo, type NodeInfo } from './server-info.ts';

/** One end of a migration, connected, with what its nodes said of themselves when it was opened. */
export interface MigrationEnd {
  endpoint: OperatorEndpoint;
  client: RedisClient;
  nodes: NodeInfo[];
}

/** Connects; a server that turns out to be a cluster node is reached again as a cluster. */
export async function openEnd(endpoint: OperatorEndpoint, commandTimeoutMs: number): Promise<MigrationEnd> {
  const client = await connectTo(endpoint, { commandTimeoutMs });
  const nodes = await serverInfo(client);
  if (!endpoint.cluster && nodes[0]?.info.get('cluster_enabled') === '1') {
    client.disconnect();
    return openEnd({ ...endpoint, cluster: true }, commandTimeoutMs);
  }
  return { endpoint, client, nodes };
}

/** The keys of the end's database alone (the copy touches no other); undefined where INFO is refused. */
export function keysIn(end: MigrationEnd): number | undefined {
  if (infoRefusal(end.nodes) !== undefined) return undefined;
  return keyCounts(end.nodes, databaseOf(new URL(end.endpoint.url))).keys;
}

/** The Redis version of the end (its first node's), or `?` where INFO is refused. */
export function versionOf(end: MigrationEnd): string {
  return end.nodes[0]?.info.get('redis_version') ?? '?';
}

export function describeEnd(label: string, end: MigrationEnd): string {
  const version = versionOf(end);
  const mode = end.endpoint.cluster ? `cluster of ${end.nodes.length} masters` : 'standalone';
  // The endpoint names the database (`…:6379/3`); the keys counted are that database's.
  const keys = keysIn(end);
  return `${label} ${describeEndpoint(end.endpoint)}: Redis ${version}, ${mode}, ${keys === undefined ? 'keys unknown (INFO not allowed)' : `${keys} keys`}`;
}

/** The run_id of each node of `nodes` whose INFO shows it. */
function runIds(nodes: readonly NodeInfo[]): string[] {
  return nodes.flatMap((node) => node.info.get('run_id') ?? []);
}

/** Whether INFO names every node of the end (refused or hidden by a managed service, it names none). */
export function runIdsKnown(end: MigrationEnd): boolean {
  return runIds(end.nodes).length === end.nodes.length;
}

/** Whether both ends are one database: known to be, known not to be, or not known. */
export type Sameness = 'same' | 'different' | 'unknown';

/**
 * Whether both sides hold one database: a server in common, by its run_id, and the same database
 * number. Every node is compared, not the first: two entry points of one cluster list its masters
 * in different orders. Where INFO does not name every node, a probe key written on the target and
 * looked for on the source tells, when writing is allowed (not in a dry run).
 */
export async function sameness(source: MigrationEnd, target: MigrationEnd, { mayWrite }: { mayWrite: boolean }): Promise<Sameness> {
  if (runIdsKnown(source) && runIdsKnown(target)) {
    const targetIds = new Set(databaseIds(target));
    return databaseIds(source).some((id) => targetIds.has(id)) ? 'same' : 'different';
  }
  return mayWrite ? probeBothSides(source, target) : 'unknown';
}

/** `<run_id>/<database>` for each node of the end. */
function databaseIds(end: MigrationEnd): string[] {
  const database = databaseOf(new URL(end.endpoint.url));
  return runIds(end.nodes).map((runId) => `${runId}/${database}`);
}

/**
 * Writes a probe key on the target (for a minute at most) and looks for it on the source. A user
 * limited to some keys (an ACL key pattern) may not write or read it: then it is not known.
 */
async function probeBothSides(source: MigrationEnd, target: MigrationEnd): Promise<Sameness> {
  const probe = `redis-migrate:probe:${randomBytes(12).toString('hex')}`;
  try {
    await target.client.set(probe, '1', 'PX', 60_000);
  } catch {
    return 'unknown';
  }
  try {
    return (await source.client.exists(probe)) === 1 ? 'same' : 'different';
  } catch {
    return 'unknown';
  } finally {
    // Left behind, it expires within the minute.
    await target.client.del(probe).catch(() => undefined);
  }
}

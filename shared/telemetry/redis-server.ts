// The Redis server's own figures from INFO (used memory, connected clients, keyspace hits and
// misses), one series per node. Read by the scheduled flush only, never on the request path:
// INFO is a few kilobytes and every function container asking for it would only repeat it.

import type { RedisClient } from '../redis.ts';
import { dataNodes, nodeEndpoint, parseInfo } from '../redis-info.ts';
import { FLUSH_METRICS } from './flush-catalogue.ts';
import { telemetryEnabled } from './metrics.ts';
import { observeSum, setGauge, type Attributes } from './registry.ts';

export interface RedisServerStats {
  serverAddress: string;
  serverPort: number;
  /** When the server started (its counters count from there). */
  startTimeMs: number;
  usedMemory?: number;
  connectedClients?: number;
  keyspaceHits?: number;
  keyspaceMisses?: number;
}

/** One Redis node's INFO figures (read by the scheduled flush, never on the request path). */
function observeRedisServer(stats: RedisServerStats): void {
  if (!telemetryEnabled()) return;
  const attributes: Attributes = { 'server.address': stats.serverAddress, 'server.port': stats.serverPort };
  if (stats.usedMemory !== undefined) setGauge(FLUSH_METRICS.redisMemoryUsed, stats.usedMemory, attributes);
  if (stats.connectedClients !== undefined) setGauge(FLUSH_METRICS.redisClientsConnected, stats.connectedClients, attributes);
  if (stats.keyspaceHits !== undefined) observeSum(FLUSH_METRICS.redisKeyspaceHits, stats.keyspaceHits, attributes, stats.startTimeMs);
  if (stats.keyspaceMisses !== undefined) observeSum(FLUSH_METRICS.redisKeyspaceMisses, stats.keyspaceMisses, attributes, stats.startTimeMs);
}

function integer(fields: Map<string, string>, name: string): number | undefined {
  const value = Number(fields.get(name));
  return fields.has(name) && Number.isSafeInteger(value) ? value : undefined;
}

const startTimes = new Map<string, number>();

/**
 * When the server started, the start of its counters. Kept per `run_id` (new at each restart):
 * computed again from the whole-second uptime it would wobble, and a moving start time looks like
 * a counter reset.
 */
function startTimeOf(fields: Map<string, string>): number {
  const runId = fields.get('run_id') ?? '';
  let start = startTimes.get(runId);
  if (start === undefined) {
    start = Date.now() - (integer(fields, 'uptime_in_seconds') ?? 0) * 1000;
    if (runId !== '') startTimes.set(runId, start);
  }
  return start;
}

/** Reads INFO from every master and records it as gauges and sums. Managed services that hide some fields just omit those series. */
export async function observeRedisServers(client: RedisClient): Promise<void> {
  await Promise.all(
    (await dataNodes(client)).map(async (node) => {
      const fields = parseInfo(await node.info());
      const { host, port } = nodeEndpoint(node);
      observeRedisServer({
        serverAddress: host,
        serverPort: port,
        startTimeMs: startTimeOf(fields),
        usedMemory: integer(fields, 'used_memory'),
        connectedClients: integer(fields, 'connected_clients'),
        keyspaceHits: integer(fields, 'keyspace_hits'),
        keyspaceMisses: integer(fields, 'keyspace_misses'),
      });
    }),
  );
}

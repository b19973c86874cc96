// Clients for the operator tools, built with the functions' own options (TLS, REDIS_TLS_CA_FILE,
// time-outs, RESP2), so that what the doctor sees is what a Lambda would see. Unlike the
// functions' client, a failed connection is reported with the error that explains it, not with
// ioredis's generic "Connection is closed".

import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { config, ConfigError } from '#shared/config.ts';
import type { RedisClient } from '#shared/redis.ts';
import { DatabaseUnusable, databaseRefusal, newRedisClient } from '#shared/redis-client.ts';
import { parseInfo } from '#shared/redis-info.ts';
import { hostAndPort } from '#shared/redis-url.ts';
import type { OperatorEndpoint } from './endpoint.ts';

export interface OperatorClientOptions {
  /**
   * Command and socket time-out. The doctor keeps the functions' value; the migration raises it,
   * because a pipeline of a thousand DUMPs or one large RESTORE may legitimately take seconds.
   */
  commandTimeoutMs?: number;
}

/** The connection to `endpoint` failed; `reason` is the most telling error seen on the way. */
export class ConnectionFailure extends Error {
  override name = 'ConnectionFailure';
  readonly endpoint: OperatorEndpoint;
  readonly reason: Error;
  /** How long a command was given to answer (a server that accepts the connection and stays silent is waited for this long). */
  readonly commandTimeoutMs: number;
  constructor(endpoint: OperatorEndpoint, reason: Error, commandTimeoutMs: number) {
    super(reason.message, { cause: reason });
    this.endpoint = endpoint;
    this.reason = reason;
    this.commandTimeoutMs = commandTimeoutMs;
  }
}

/** Messages that only say "it failed", hiding the error that says why. */
const GENERIC = /Connection is closed|None of startup nodes is available|Reached the max retries|Failed to refresh slots cache/i;

function mostTelling(errors: unknown[]): Error {
  const candidates: Error[] = [];
  for (const error of errors) {
    if (!(error instanceof Error)) continue;
    const lastNodeError = (error as { lastNodeError?: unknown }).lastNodeError;
    if (lastNodeError instanceof Error) candidates.push(lastNodeError);
    candidates.push(error);
  }
  return candidates.find((error) => !GENERIC.test(error.message)) ?? candidates.at(-1) ?? new Error('unknown failure');
}

/** The cluster is reachable but not serving: a node says `cluster_state` is not `ok`. */
export class ClusterNotServing extends Error {
  override name = 'ClusterNotServing';
}

/**
 * Rejects when the client ends before it is ready. ioredis's Cluster gives up on a cluster whose
 * state is `fail` (a master down) by ending, without settling `connect()`: awaited alone, that
 * promise would hang, or let the process exit 0 with nothing done.
 */
function endsBeforeReady(client: RedisClient): Promise<never> {
  return new Promise((_, reject) => {
    client.once('end', () => reject(new Error('the connection ended before it was ready')));
  });
}

/** What to tell of a cluster node whose `cluster_state` is not ok (after "the" or "The"). */
export function clusterStateFailure(address: string, state: string): string {
  return `cluster node ${address} reports cluster_state:${state}: some slots have no reachable master; check the failed nodes (CLUSTER NODES)`;
}

/** What the cluster's entry node says of the cluster, when it is reachable and says it is not ok. */
async function clusterStateProblem(endpoint: OperatorEndpoint): Promise<ClusterNotServing | undefined> {
  const url = new URL(endpoint.url);
  const node = newRedisClient(url, { cluster: false, overrides: { maxRetriesPerRequest: 0, retryStrategy: () => null } }, { Redis, Cluster });
  node.on('error', () => {});
  try {
    await node.connect();
    const info = String(await node.cluster('INFO'));
    const state = parseInfo(info).get('cluster_state');
    if (state === undefined || state === 'ok') return undefined;
    const { host, port } = hostAndPort(url);
    return new ClusterNotServing(`the ${clusterStateFailure(`${host}:${port}`, state)}`);
  } catch {
    return undefined;
  } finally {
    node.disconnect();
  }
}

/** A database the URL cannot use, saying which URL: the tools take two (--from, --to), or a secret's. */
function namingOrigin(error: unknown, endpoint: OperatorEndpoint): unknown {
  return error instanceof DatabaseUnusable ? new ConfigError(`the Redis URL in ${endpoint.origin} ${error.fault}`) : error;
}

/** Connects and proves the connection with a PING (a server that wants a password says so only then). */
export async function connectTo(endpoint: OperatorEndpoint, options: OperatorClientOptions = {}): Promise<RedisClient> {
  const url = new URL(endpoint.url);
  const overrides: RedisOptions = { enableAutoPipelining: false };
  if (options.commandTimeoutMs !== undefined) {
    overrides.commandTimeout = options.commandTimeoutMs;
    overrides.socketTimeout = options.commandTimeoutMs;
  }
  const effectiveCommandTimeoutMs = options.commandTimeoutMs ?? config().redis.commandTimeoutMs;
  // Asked first, of the entry node alone: a cluster client meeting a silent master waits out a
  // command time-out on each node before it fails.
  const notServing = endpoint.cluster ? await clusterStateProblem(endpoint) : undefined;
  if (notServing !== undefined) throw new ConnectionFailure(endpoint, notServing, effectiveCommandTimeoutMs);
  let client: RedisClient;
  try {
    client = newRedisClient(url, { cluster: endpoint.cluster, overrides }, { Redis, Cluster });
  } catch (error) {
    throw namingOrigin(error, endpoint);
  }
  const seen: unknown[] = [];
  client.on('error', (error: unknown) => seen.push(error));
  client.on('node error', (error: unknown) => seen.push(error));
  try {
    await Promise.race([client.connect(), endsBeforeReady(client)]);
    await client.ping();
  } catch (error) {
    client.disconnect();
    const refusal = databaseRefusal(client);
    if (refusal !== undefined) throw namingOrigin(refusal, endpoint);
    throw new ConnectionFailure(endpoint, mostTelling([...seen, error]), effectiveCommandTimeoutMs);
  }
  return client;
}

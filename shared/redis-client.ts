// How a connection to Redis is made, for the functions and the operator tools alike: the client
// options (TLS and its CA file, short time-outs, bounded retries, RESP2), a client for a URL,
// standalone or cluster, and a database the server refuses. When the container connects, and to
// which endpoint, is redis.ts's business.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { config, ConfigError } from './config.ts';
import { registerSecret } from './logger.ts';
import type { RedisClient } from './redis.ts';
import { isReadOnlyReplicaError } from './redis-errors.ts';
import { databaseOf, hostAndPort } from './redis-url.ts';

function tlsOptions(url: URL): RedisOptions['tls'] {
  if (url.protocol !== 'rediss:') return undefined;
  const { tlsCaFile } = config().redis;
  return {
    // SNI takes host names only (RFC 6066); certificates for an IP are still verified against it.
    ...(isIP(url.hostname) === 0 ? { servername: url.hostname } : {}),
    ...(tlsCaFile === undefined ? {} : { ca: caCertificates(tlsCaFile) }),
  };
}

/** The PEM file REDIS_TLS_CA_FILE names; a configuration error naming the variable when it cannot be read. */
function caCertificates(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`REDIS_TLS_CA_FILE names ${path}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** The client options of every connection to `url` (the operator tools' too, through `newRedisClient`). */
function redisClientOptions(url: URL): RedisOptions {
  const { connectTimeoutMs, commandTimeoutMs } = config().redis;
  return {
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: tlsOptions(url),
    // RESP2: every managed Redis (Upstash, ElastiCache, Redis Cloud proxies) speaks it, and it
    // saves the HELLO negotiation on connect.
    protocol: 2,
    connectTimeout: connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    // A socket that stops answering (Lambda thaw, half-open TCP) is destroyed and reconnected.
    socketTimeout: commandTimeoutMs,
    // Commands queued while disconnected fail after one reconnect attempt, not after 20.
    maxRetriesPerRequest: 1,
    // Short reconnect delays: after a Redis restart the next invocation must find the client
    // reconnected within its command time-out.
    retryStrategy: (attempt) => Math.min(25 * 2 ** attempt, 250),
    // After a failover the endpoint's name leads to the promoted replica, but a socket opened
    // before it still reaches the demoted primary, which refuses every write (READONLY) for as long
    // as the socket lives. The refused command fails (a 503, never resent: a script may have read
    // before it was refused) and the socket is replaced, so the next one reaches the new primary.
    reconnectOnError: (error) => isReadOnlyReplicaError(error),
    enableReadyCheck: false,
    disableClientInfo: true,
    // Commands are written to the socket as they are issued. Auto-pipelining would hold each one
    // until the next turn of the event loop to batch it with others: a Lambda container serves one
    // request at a time, so there is nothing to batch, and the extra turn and pipeline cost about
    // a fifth of a warm request's time (BENCHMARKS.md). Commands issued in the same tick still
    // share one round trip; batches that matter are explicit (MGET, pipelines, the rate limiter's
    // runs, the usage counters of the requests answered in one turn: shared/usage/counters.ts).
    enableAutoPipelining: false,
    lazyConnect: true,
  };
}

/** The Cluster options of every cluster connection to `url` (the operator tools' too). */
function redisClusterOptions(url: URL): ClusterOptions {
  return {
    redisOptions: redisClientOptions(url),
    lazyConnect: true,
    enableAutoPipelining: false,
    enableOfflineQueue: true,
    maxRedirections: 4,
    slotsRefreshTimeout: config().redis.connectTimeoutMs,
    clusterRetryStrategy: (attempt) => (attempt > 3 ? null : Math.min(100 * attempt, 500)),
    // TLS clusters (ElastiCache, Redis Cloud) announce IPs; keep the hostname for certificate checks.
    dnsLookup: (address, callback) => callback(null, address),
  };
}

/**
 * ioredis's two classes, passed in: the functions load ioredis on first connection, the tools at
 * start. `Cluster` is read only for a cluster: in the functions' bundles, reading it is what loads
 * it (infra/bundling/plugins.cjs).
 */
export interface Ioredis {
  Redis: typeof Redis;
  Cluster: typeof Cluster;
}

export interface ClientChoice {
  cluster: boolean;
  /** Replace the functions' options of every connection (e.g. the operator tools' time-outs). */
  overrides?: RedisOptions;
}

/**
 * Redis's refusal of the handshake's SELECT, however it is worded: `DB index is out of range`,
 * `SELECT is not allowed in cluster mode`, a managed Redis's own text. Only the handshake's
 * commands (AUTH, SELECT) and the connection itself raise error events, and neither AUTH's nor the
 * socket's errors name a DB or SELECT.
 */
const NO_SUCH_DATABASE = /\bDB\b|\bSELECT\b/i;

/** The Redis URL's database cannot be used; `fault` says why ("names database 2, but …"), for a message that names the URL. */
export class DatabaseUnusable extends ConfigError {
  readonly fault: string;
  constructor(fault: string) {
    super(`the Redis URL ${fault}`);
    this.fault = fault;
  }
}

/** Clients whose server refused the URL's database, with the error that says so. */
const refusedDatabases = new WeakMap<RedisClient, DatabaseUnusable>();

/** The configuration error of a client whose server has no such database as its URL names. */
export function databaseRefusal(client: RedisClient): DatabaseUnusable | undefined {
  return refusedDatabases.get(client);
}

/**
 * ioredis reports a refused SELECT as an error event and goes on in database 0: with another
 * database's data, or writing into it. The client is stopped instead, before it is ready, so
 * that every command fails and says why.
 */
function stopOnMissingDatabase(client: Redis, database: number): void {
  client.on('error', (error: Error) => {
    if (!NO_SUCH_DATABASE.test(error.message) || refusedDatabases.has(client)) return;
    refusedDatabases.set(client, new DatabaseUnusable(`names database ${database}, which the server refused (${error.message})`));
    client.disconnect();
  });
}

/** A client for `url` with the options above (not connected yet: `lazyConnect`), the one way to make one. */
export function newRedisClient(url: URL, { cluster, overrides = {} }: ClientChoice, ioredis: Ioredis): RedisClient {
  const seed = hostAndPort(url);
  const database = databaseOf(url);
  if (!cluster) {
    const client = new ioredis.Redis({ ...redisClientOptions(url), ...overrides, ...seed, db: database });
    if (database !== 0) stopOnMissingDatabase(client, database);
    return client;
  }
  if (database !== 0) throw new DatabaseUnusable(`names database ${database}, but a Redis Cluster has only database 0`);
  const options = redisClusterOptions(url);
  return new ioredis.Cluster([seed], { ...options, redisOptions: { ...options.redisOptions, ...overrides } });
}

/**
 * Has the logger mask the password of a Redis URL, as the URL writes it (percent-encoded) and
 * decoded: an error message may hold either.
 */
export function maskPasswordOf(url: URL): void {
  if (url.password === '') return;
  registerSecret(url.password);
  try {
    registerSecret(decodeURIComponent(url.password));
  } catch {
    // undecodable: refused with its own message before any connection (checkRedisCredentials)
  }
}

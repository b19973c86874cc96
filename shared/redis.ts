// The one Redis connection of a container: created on first use (never at import, so the Lambda
// init phase stays network-free), reused by every later invocation, and recovered in place after
// a Redis restart, a frozen socket, a failover, a rotated password or a secret that names another
// Redis.
//
//   invocation 1:  withRedis ─ resolve URL (env | secret) ─ connect ─ command ─┐
//   invocation 2:  withRedis ───────────────────────────────────── command ─┤ same client
//   password rotated: command fails WRONGPASS → read secret again → new client → retry once
//   failover:         write refused READONLY → 503, socket replaced → next request reaches the new primary
//   Redis moved:      command fails, unreachable → read secret again → names another? → next request connects there
//
// How a client is made: redis-client.ts. Sharing socket writes between commands: redis-writes.ts.

import type { Cluster, Redis } from 'ioredis';
import { config, ConfigError } from './config.ts';
import { log, outsideRequests } from './logger.ts';
import { monotonicMs } from './monotonic-clock.ts';
import { HttpProblem, redisUnavailable } from './problem.ts';
import { databaseRefusal, maskPasswordOf, newRedisClient, type Ioredis } from './redis-client.ts';
import { resolveRedisEndpoint, type RedisEndpoint } from './redis-endpoint.ts';
import { describeRedisUrl } from './redis-url.ts';
import { isCluster } from './redis-cluster.ts';
import { isAuthFailure, isRedisReply, isRedisUnavailableError } from './redis-errors.ts';

export type RedisClient = Redis | Cluster;

interface Connection {
  client: RedisClient;
  endpoint: RedisEndpoint;
  /** Set by the client's error events: the server refused our credentials. */
  authRejected: boolean;
}

let current: Promise<Connection> | undefined;
/** `current` once it has resolved, with what it resolved to: what `withRedis` uses without waiting. */
let known: { promise: Promise<Connection>; connection: Connection } | undefined;
/** The client of the last connection made, for telemetry to read without creating one. */
let latestClient: RedisClient | undefined;

function createClient(endpoint: RedisEndpoint, ioredis: Ioredis): RedisClient {
  const url = new URL(endpoint.url);
  maskPasswordOf(url);
  return newRedisClient(url, { cluster: config().redis.cluster }, ioredis);
}

async function connect(refreshSecret: boolean): Promise<Connection> {
  // ioredis is imported on first connection, not at init: evaluating it costs about 10 ms that a
  // cold start would otherwise pay before the handler can even run. When the URL comes from
  // Secrets Manager, that happens while the request for it is on the network, where a cold start
  // would otherwise sit idle; else right after.
  let loading: Promise<Ioredis> | undefined;
  const loadIoredis = () => (loading ??= import('ioredis'));
  const endpoint = await resolveRedisEndpoint({ refresh: refreshSecret, whileWaiting: loadIoredis });
  const ioredis = await loadIoredis();
  log.debug('redis client created', { endpoint: describeRedisUrl(endpoint.url), cluster: config().redis.cluster });
  // The connection serves every later request of the container: its sockets and their events
  // belong to none of them.
  return outsideRequests(() => {
    const client = createClient(endpoint, ioredis);
    latestClient = client;
    const connection: Connection = { client, endpoint, authRejected: false };
    let lastLogged = '';
    const noteAuthRejection = (error: Error) => {
      if (isAuthFailure(error)) connection.authRejected = true;
    };
    if (isCluster(client)) {
      // A Cluster reports what its nodes' connections meet (a password a node refuses) as 'node error'.
      client.on('node error', noteAuthRejection);
      // A master that joins later (a failover, a resharding) is connected as the first ones were.
      client.on('+node', () => {
        if (client.status === 'ready') connectEveryMaster(client);
      });
    }
    client.on('error', (error: Error) => {
      noteAuthRejection(error);
      // One line per distinct failure, not one per reconnect attempt.
      if (error.message !== lastLogged) {
        lastLogged = error.message;
        log.warn('redis connection error', { endpoint: describeRedisUrl(endpoint.url), err: error });
      }
    });
    client.on('ready', () => {
      connection.authRejected = false;
      lastLogged = '';
      if (isCluster(client)) connectEveryMaster(client);
    });
    client.connect().catch(() => {
      // Reported through the error event; commands wait in the bounded offline queue meanwhile.
    });
    return connection;
  });
}

/**
 * ioredis gave up on this client for good: it ended (a Cluster after its last retry, a refused
 * database), or it is a Cluster left closed (one whose first connection failed stays so, and keeps
 * every command queued). A standalone client that is closed is between two reconnection attempts.
 */
function gaveUp(client: RedisClient): boolean {
  return client.status === 'end' || (client.status === 'close' && isCluster(client));
}

/**
 * Opens the connection to every master now rather than on each one's first command: a cold
 * container's TLS handshakes then run side by side, not one after another as its first request
 * reaches one master after the other (the session's, the rate limit's, the usage counters'). The
 * rate-limit deadline counts from then (shared/rate-limit/deadline.ts).
 */
function connectEveryMaster(cluster: Cluster): void {
  for (const node of cluster.nodes('master')) {
    if (node.status === 'wait') node.connect().catch(() => {}); // failures reach the Cluster's own handling
  }
}

function connection(refreshSecret = false): Promise<Connection> {
  if (known !== undefined && known.promise === current && gaveUp(known.connection.client)) {
    // The next request connects afresh rather than fail until the container is recycled.
    dropConnection(known.promise, known.connection);
  }
  if (!current || refreshSecret) {
    const previous = current;
    const next = connect(refreshSecret);
    current = next;
    next.then(
      (connection) => {
        if (current === next) known = { promise: next, connection };
      },
      () => {},
    );
    // A failed resolution (secret unreadable) is not kept: the next invocation tries again.
    next.catch(() => {
      if (current === next) current = undefined;
    });
    previous?.then(({ client }) => client.disconnect()).catch(() => {});
  }
  return current;
}

/** The client of the connection in use once it is made (undefined while connecting, or before the first). */
export function connectedRedisClient(): RedisClient | undefined {
  return known?.connection.client;
}

/** The container's client if one was created, else undefined (never creates one). */
export function currentRedisClient(): RedisClient | undefined {
  return latestClient;
}

/** The container's client, created on first call. Prefer `withRedis`, which also maps failures. */
export async function getRedis(): Promise<RedisClient> {
  return (await connection()).client;
}

/**
 * Runs `operation` with the container's client. Unreachable Redis becomes a 503 problem; a
 * rejected password read from the secret causes one fresh read of the secret, a new client and
 * one run of `operation` again. On a standalone Redis it never ran. On a cluster, the commands
 * sent to nodes that still took the old password (a rotation that reached one node first) did:
 * an operation that writes to several nodes resends only what failed (shared/usage/counters.ts).
 * Once the connection is known (every warm invocation), `operation` runs at once, without waiting
 * a turn for it.
 */
export function withRedis<T>(operation: (client: RedisClient) => Promise<T>): Promise<T> {
  const pending = connection();
  if (known?.promise === pending) return runOn(pending, known.connection, operation);
  return pending.then(
    (conn) => runOn(pending, conn, operation),
    (error: unknown) => {
      throw passThroughOrUnavailable(error);
    },
  );
}

/**
 * `result`, or a failure once a client that is still connecting has had its connect and command
 * time-outs: ioredis's Cluster keeps commands queued without any time-out while the cluster does
 * not serve (a restart, `cluster_state:fail`), which would hold the request until the function's.
 */
function boundedWhileConnecting<T>(client: RedisClient, result: Promise<T>): Promise<T> {
  if (client.status === 'ready') return result;
  const { connectTimeoutMs, commandTimeoutMs } = config().redis;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Command timed out: no connection to Redis within ${connectTimeoutMs + commandTimeoutMs} ms`)), connectTimeoutMs + commandTimeoutMs);
  });
  return Promise.race([result, late]).finally(() => clearTimeout(timer));
}

function runOn<T>(pending: Promise<Connection>, conn: Connection, operation: (client: RedisClient) => Promise<T>): Promise<T> {
  let result: Promise<T>;
  try {
    result = boundedWhileConnecting(conn.client, Promise.resolve(operation(conn.client)));
  } catch (error) {
    return afterFailure(pending, conn, operation, error);
  }
  return result.then(undefined, (error: unknown) => afterFailure(pending, conn, operation, error));
}

async function afterFailure<T>(
  pending: Promise<Connection>,
  conn: Connection,
  operation: (client: RedisClient) => Promise<T>,
  error: unknown,
): Promise<T> {
  const refusal = databaseRefusal(conn.client);
  if (refusal !== undefined) throw refusal;
  if (credentialsRejected(conn, error) && conn.endpoint.source === 'secret') {
    log.warn('redis rejected the credentials; reading the secret again');
    const fresh = await renewConnection(pending).catch((cause: unknown) => {
      throw passThroughOrUnavailable(cause);
    });
    try {
      return await operation(fresh.client);
    } catch (retryError) {
      throw toProblem(retryError);
    }
  }
  // Only when the Redis could not be reached: one that answers (OOM, BUSY) is where the secret points.
  if (isRedisUnavailableError(error) && !isRedisReply(error)) await followSecretIfMoved(pending, conn);
  throw toProblem(error);
}

/**
 * The failing request waits this long at most for the secret's new read: long enough for a
 * healthy Secrets Manager, so that the next request already connects where the secret points,
 * short enough that the 503 stays fast when Secrets Manager is slow too (the read goes on).
 */
const ENDPOINT_CHECK_WAIT_MS = 300;

/** Drops the connection when the secret names another Redis; the operation is not run again there. */
async function followSecretIfMoved(pending: Promise<Connection>, conn: Connection): Promise<void> {
  const check = secretNamesAnotherRedis(conn).then((moved) => {
    if (!moved) return;
    log.warn('redis unreachable and the secret now names another; the next request connects there', {
      endpoint: describeRedisUrl(conn.endpoint.url),
    });
    // Not run again on the new server: the old one may have run it before it stopped answering.
    dropConnection(pending, conn);
  });
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, ENDPOINT_CHECK_WAIT_MS)));
  await Promise.race([check, waited]);
  clearTimeout(timer);
}

/** When the secret was last read again because the Redis it named could not be reached. */
let endpointCheckedAt = Number.NEGATIVE_INFINITY;
/** While a Redis is down, one failing request in this time reads the secret again, not each one. */
const ENDPOINT_CHECK_INTERVAL_MS = 5_000;

/**
 * Whether the secret names another Redis than the one `conn` cannot reach: a rotation to a new
 * host, or a container started while the secret still held the placeholder a deploy creates. The
 * client would otherwise try the old address until the container is recycled.
 */
async function secretNamesAnotherRedis(conn: Connection): Promise<boolean> {
  if (conn.endpoint.source !== 'secret' || monotonicMs() - endpointCheckedAt < ENDPOINT_CHECK_INTERVAL_MS) return false;
  endpointCheckedAt = monotonicMs();
  try {
    return (await resolveRedisEndpoint({ refresh: true })).url !== conn.endpoint.url;
  } catch {
    return false; // the secret unreadable or unusable: the failure of the Redis that was reached stands
  }
}

/** Closes `conn`; the next request connects afresh, unless another request replaced it already. */
function dropConnection(pending: Promise<Connection>, conn: Connection): void {
  if (current === pending) {
    current = undefined;
    known = undefined;
  }
  conn.client.disconnect();
}

/**
 * The connection that replaces `rejected`: made once, with the secret read again, however many
 * concurrent requests saw `rejected` fail (each renewal would close the client the others retry on).
 */
function renewConnection(rejected: Promise<Connection>): Promise<Connection> {
  return current !== undefined && current !== rejected ? current : connection(true);
}

/** Problems (secret unreadable) and configuration mistakes keep their own meaning; the rest is "Redis is down". */
function passThroughOrUnavailable(error: unknown): unknown {
  return error instanceof HttpProblem || error instanceof ConfigError ? error : redisUnavailable(error);
}

function credentialsRejected(conn: Connection, error: unknown): boolean {
  return conn.authRejected || isAuthFailure(error);
}

function toProblem(error: unknown): unknown {
  return isRedisUnavailableError(error) ? redisUnavailable(error) : error;
}

/** Closes the container's client (tests, operator tools). */
export async function closeRedis(): Promise<void> {
  const previous = current;
  current = undefined;
  known = undefined;
  latestClient = undefined;
  endpointCheckedAt = Number.NEGATIVE_INFINITY;
  if (!previous) return;
  try {
    const { client } = await previous;
    client.disconnect();
  } catch {
    // nothing was connected
  }
}

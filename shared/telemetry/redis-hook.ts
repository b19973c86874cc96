// Redis command durations without wrapping the client: ioredis 6 publishes every command on the
// Node diagnostics channel `ioredis:command` (a TracingChannel: start when written, asyncEnd when
// answered or failed). Subscribing is what turns that publishing on, so it happens only when
// metrics are exported; without a subscriber ioredis skips the tracing entirely.

import { tracingChannel } from 'node:diagnostics_channel';
import type { Cluster, Redis } from 'ioredis';
import { monotonicMs } from '../monotonic-clock.ts';
import { currentRedisClient } from '../redis.ts';
import { isCluster } from '../redis-cluster.ts';
import { nodeAddress } from '../redis-info.ts';
import { observeRedisConnections, recordRedisOperation } from './metrics.ts';

/** What ioredis puts in the channel's context (see ioredis/built/tracing.js). */
interface CommandContext {
  command: string;
  serverAddress?: string;
  serverPort?: number;
  error?: unknown;
  /** Ours: monotonicMs() when the command was written. */
  tcStartedAt?: number;
}

const REPLY_ERROR_PREFIX = /^([A-Z][A-Z_-]+) /;

/** The prefix of an error Redis answered (`WRONGTYPE`, `NOSCRIPT`); none when no reply came. */
function redisErrorPrefix(error: unknown): string | undefined {
  return error instanceof Error ? REPLY_ERROR_PREFIX.exec(error.message)?.[1] : undefined;
}

/**
 * error.type per the semantic conventions: the Redis error prefix (`WRONGTYPE`, `NOSCRIPT`),
 * the socket error code, a client-side time-out, or `_OTHER`. Class names are not used: the
 * minified bundle renames them.
 */
function redisErrorType(error: unknown): string {
  if (!(error instanceof Error)) return '_OTHER';
  const prefix = redisErrorPrefix(error);
  if (prefix !== undefined) return prefix;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  if (/timed out|timeout/i.test(error.message)) return 'timeout';
  if (/connection is closed|stream isn't writeable/i.test(error.message)) return 'connection_closed';
  return '_OTHER';
}

let installed = false;

/** Starts timing every Redis command of this process (once). */
export function installRedisHook(): void {
  if (installed) return;
  installed = true;
  tracingChannel<unknown, CommandContext>('ioredis:command').subscribe({
    start(context) {
      context.tcStartedAt = monotonicMs();
    },
    end() {},
    asyncStart() {},
    asyncEnd(context) {
      if (context.tcStartedAt === undefined) return;
      recordRedisOperation({
        operation: context.command.toUpperCase(),
        seconds: (monotonicMs() - context.tcStartedAt) / 1000,
        serverAddress: context.serverAddress,
        serverPort: context.serverPort,
        ...(context.error === undefined ? {} : { errorType: redisErrorType(context.error), statusCode: redisErrorPrefix(context.error) }),
      });
    },
    error() {},
  });
}

const createdAt = new WeakMap<object, number>();

/** The ready connections of the container's client, one per node, as `host:port`. */
function readyConnections(client: Redis | Cluster): string[] {
  const nodes: Redis[] = isCluster(client) ? client.nodes('all') : [client];
  return nodes.filter((node) => node.status === 'ready').map(nodeAddress);
}

/** Records the connections held now (before each export): the client is read, never created. */
export function observeConnectionsHeld(): void {
  const client = currentRedisClient();
  if (client === undefined) {
    observeRedisConnections([], Date.now());
    return;
  }
  if (!createdAt.has(client)) createdAt.set(client, Date.now());
  observeRedisConnections(readyConnections(client), createdAt.get(client)!);
}

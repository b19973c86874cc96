// Commands that do not wait for each other share a socket write (a system call, the largest cost
// of a warm request): `inOneWrite` for those one request sends together, `sendAtTurnEnd` and
// `withRedisSharingWrites` for those of the requests a process serves at once.

import { currentLogContext, inLogContext, type LogContext } from './logger.ts';
import { connectedRedisClient, withRedis, type RedisClient } from './redis.ts';
import { isCluster } from './redis-cluster.ts';

/**
 * Runs `send`, which issues its commands synchronously (ioredis writes a command to the socket as
 * it is called), with the socket corked: the commands leave in one write, one system call,
 * instead of one each, and nothing waits. On a cluster the commands go to several sockets and
 * are sent as they are.
 */
export function inOneWrite<T>(client: RedisClient, send: () => T): T {
  const stream = isCluster(client) ? undefined : client.stream;
  if (stream === undefined || stream === null || client.status !== 'ready') return send();
  stream.cork();
  try {
    return send();
  } finally {
    stream.uncork();
  }
}

/** Each with the log context of the request that queued it: its lines keep their own request id. */
let sendsAtTurnEnd: Array<{ send: () => void; logContext: LogContext | undefined }> = [];

/**
 * Runs `send` at the end of this turn of the event loop (setImmediate) with every other `send`
 * queued in the same turn, their commands in one write (`inOneWrite`): the commands of the
 * requests a container serves at once leave together. A `send`'s failures belong in the promises
 * it makes; one that throws (a bug) is raised once the others have left.
 */
export function sendAtTurnEnd(send: () => void): void {
  sendsAtTurnEnd.push({ send, logContext: currentLogContext() });
  if (sendsAtTurnEnd.length === 1) setImmediate(sendQueuedAtTurnEnd);
}

/**
 * `withRedis(operation)`, its commands sent at once when the connection has nothing in flight (a
 * Lambda container's one request), else at the end of this turn (`sendAtTurnEnd`) with those of
 * the other requests in flight: Nagle's rule, for the same reason. Sent at once, Redis answers
 * while the request goes on with its other work (held, the one-request case measured slower);
 * held, many requests share a write (a process serving 50 at once measured 10–15% faster).
 */
export function withRedisSharingWrites<T>(operation: (client: RedisClient) => Promise<T>): Promise<T> {
  if (nothingToShareAWriteWith()) return withRedis(operation);
  return new Promise((resolve, reject) =>
    sendAtTurnEnd(() => {
      try {
        withRedis(operation).then(resolve, reject);
      } catch (error) {
        reject(error);
      }
    }),
  );
}

/**
 * No reply awaited and nothing held: a command sent now goes alone anyway (while a client
 * connects, its commands wait in its offline queue, not in commandQueue). Also before the
 * container has a client, and on a cluster (its commands go to several sockets, sent as they
 * come).
 */
function nothingToShareAWriteWith(): boolean {
  const client = connectedRedisClient();
  if (client === undefined) return true;
  return isCluster(client) || (client.commandQueue.length === 0 && sendsAtTurnEnd.length === 0);
}

function sendQueuedAtTurnEnd(): void {
  const sends = sendsAtTurnEnd;
  sendsAtTurnEnd = [];
  let failure: { error: unknown } | undefined;
  const run = () => {
    for (const { send, logContext } of sends) {
      try {
        inLogContext(logContext, send);
      } catch (error) {
        // A bug: the sends after it still leave (one is the rate limiter's, whose checks would
        // otherwise wait forever), then it surfaces as it would have alone.
        failure ??= { error };
      }
    }
  };
  const client = connectedRedisClient();
  if (client === undefined) run();
  else inOneWrite(client, run);
  if (failure !== undefined) throw failure.error;
}

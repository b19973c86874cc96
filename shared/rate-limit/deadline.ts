// The check's own deadline. Redis's command time-out (800 ms, sized for every other command) is
// far too long for a gate in front of every request: the check gives up after about 200 ms and the
// route decides (fail open or closed). The late reply, if any, is simply dropped.
//
// The deadline measures Redis's answer, not what comes before it or around it:
// - it starts once the client is ready (a Cluster: with a ready connection to every master). A cold
//   container's first check waits for the connection (TCP, TLS, AUTH: several round trips to a
//   managed Redis), which has its own time-out;
//   counting it here turned a healthy but distant Redis into a 503 on every cold start. A client
//   that is not ready within the connect time-out starts the clock anyway: a Redis that is down
//   is still a 503 within about a second.
// - when it fires, a reply that arrived meanwhile still wins. A busy process (a password hash on
//   every core) runs expired timers before it reads its sockets; the rejection waits for the read.

import { config } from '../config.ts';
import type { RedisClient } from '../redis.ts';
import { isCluster } from '../redis-cluster.ts';
import { redisUnavailable } from '../problem.ts';

/**
 * Ready to answer at once: a standalone client that is ready; a Cluster that is ready and holds a
 * ready connection to every master (shared/redis.ts opens them all once the Cluster is ready).
 */
function answersAtOnce(client: RedisClient): boolean {
  if (client.status !== 'ready') return false;
  return !isCluster(client) || client.nodes('master').every((node) => node.status === 'ready');
}

/** Per client, the checks waiting for it to answer at once: one set of listeners however many wait. */
const waitingToAnswer = new WeakMap<RedisClient, Set<() => void>>();

/** Calls `callback` once the client answers at once; the returned function forgets it (no closure kept). */
function onceAnswering(client: RedisClient, callback: () => void): () => void {
  let waiting = waitingToAnswer.get(client);
  if (waiting === undefined) {
    const callbacks = new Set<() => void>();
    waiting = callbacks;
    waitingToAnswer.set(client, callbacks);
    const listening = new WeakSet<object>();
    // Listens, once per emitter, for the next 'ready' of the client or of a master still connecting.
    const listen = () => {
      const emitters = client.status !== 'ready' ? [client] : isCluster(client) ? client.nodes('master').filter((node) => node.status !== 'ready') : [];
      for (const emitter of emitters) {
        if (listening.has(emitter)) continue;
        listening.add(emitter);
        emitter.once('ready', () => {
          listening.delete(emitter);
          recheck();
        });
      }
    };
    const recheck = () => {
      if (!answersAtOnce(client)) return listen();
      waitingToAnswer.delete(client);
      for (const each of callbacks) each();
    };
    listen();
  }
  waiting.add(callback);
  return () => waiting.delete(callback);
}

export function withinTime<T>(client: RedisClient, operation: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let clock: NodeJS.Timeout | undefined;
    let connecting: NodeJS.Timeout | undefined;
    let forget = () => {};
    const startClock = () => {
      clearTimeout(connecting);
      forget();
      if (done || clock !== undefined) return;
      clock = setTimeout(() => {
        // setImmediate runs after the event loop's I/O phase: a reply already in the socket is read first.
        setImmediate(() => {
          if (done) return;
          done = true;
          reject(redisUnavailable(new Error(`the rate-limit check took more than ${timeoutMs} ms`)));
        });
      }, timeoutMs);
    };
    if (answersAtOnce(client)) {
      startClock();
    } else {
      forget = onceAnswering(client, startClock);
      // A client that does not get there within the connect time-out (a master down) starts the clock anyway.
      connecting = setTimeout(startClock, config().redis.connectTimeoutMs);
    }
    const settle = () => {
      done = true;
      clearTimeout(clock);
      clearTimeout(connecting);
      forget();
    };
    operation.then(
      (value) => {
        settle();
        resolve(value);
      },
      (error: unknown) => {
        settle();
        reject(error);
      },
    );
  });
}

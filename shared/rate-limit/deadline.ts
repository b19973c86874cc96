// The check's own deadline. Redis's command time-out (800 ms, sized for every other command) is
// far too long for a gate in front of every request: the check gives up after about 200 ms and the
// route decides (fail open or closed). The late reply, if any, is simply dropped.
//
// The deadline measures Redis's answer, not what comes before it or around it:
// - it starts once the client is ready. A cold container's first check waits for the connection
//   (TCP, TLS, AUTH: several round trips to a managed Redis), which has its own time-out;
//   counting it here turned a healthy but distant Redis into a 503 on every cold start. A client
//   that is not ready within the connect time-out starts the clock anyway: a Redis that is down
//   is still a 503 within about a second.
// - when it fires, a reply that arrived meanwhile still wins. A busy process (a password hash on
//   every core) runs expired timers before it reads its sockets; the rejection waits for the read.

import { config } from '../config.ts';
import type { RedisClient } from '../redis.ts';
import { isCluster } from '../redis-cluster.ts';
import { unavailable } from '../problem.ts';

/** Per client, what waits for its next 'ready': one listener however many checks wait. */
const waitingForReady = new WeakMap<RedisClient, Set<() => void>>();

/** Calls `callback` once the client is ready; the returned function forgets it (no closure kept). */
function onReady(client: RedisClient, callback: () => void): () => void {
  let waiting = waitingForReady.get(client);
  if (waiting === undefined) {
    const callbacks = new Set<() => void>();
    waiting = callbacks;
    waitingForReady.set(client, callbacks);
    client.once('ready', () => {
      waitingForReady.delete(client);
      for (const each of callbacks) each();
    });
  }
  waiting.add(callback);
  return () => waiting.delete(callback);
}

/**
 * Ready to answer at once: a standalone client that is ready; a Cluster that is ready and holds a
 * ready connection to every master (it opens them lazily, on a master's first command).
 */
function answersAtOnce(client: RedisClient): boolean {
  if (client.status !== 'ready') return false;
  return !isCluster(client) || client.nodes('master').every((node) => node.status === 'ready');
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
          reject(unavailable('redis', new Error(`the rate-limit check took more than ${timeoutMs} ms`)));
        });
      }, timeoutMs);
    };
    if (answersAtOnce(client)) {
      startClock();
    } else {
      // A Cluster that is ready but still opening a master's connection emits no further
      // 'ready': the connect time-out starts the clock.
      if (client.status !== 'ready') forget = onReady(client, startClock);
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

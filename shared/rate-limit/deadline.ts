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
import { unavailable } from '../problem.ts';

/** Per client, one promise of its next 'ready': one listener however many checks wait for it. */
const readiness = new WeakMap<RedisClient, Promise<void>>();

function whenReady(client: RedisClient): Promise<void> {
  let ready = readiness.get(client);
  if (ready === undefined) {
    ready = new Promise<void>((resolve) => {
      client.once('ready', () => {
        readiness.delete(client);
        resolve();
      });
    });
    readiness.set(client, ready);
  }
  return ready;
}

export function withinTime<T>(client: RedisClient, operation: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let clock: NodeJS.Timeout | undefined;
    let connecting: NodeJS.Timeout | undefined;
    const startClock = () => {
      clearTimeout(connecting);
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
    if (client.status === 'ready') {
      startClock();
    } else {
      void whenReady(client).then(startClock);
      connecting = setTimeout(startClock, config().redis.connectTimeoutMs);
    }
    operation.then(
      (value) => {
        done = true;
        clearTimeout(clock);
        clearTimeout(connecting);
        resolve(value);
      },
      (error: unknown) => {
        done = true;
        clearTimeout(clock);
        clearTimeout(connecting);
        reject(error);
      },
    );
  });
}

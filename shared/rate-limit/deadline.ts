// The check's own deadline. Redis's command time-out (800 ms, sized for every other command) is
// far too long for a gate in front of every request: the check gives up after about 200 ms and the
// route decides (fail open or closed). The late reply, if any, is simply dropped.

import { unavailable } from '../problem.ts';

export function withinTime<T>(operation: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(unavailable('redis', new Error(`the rate-limit check took more than ${timeoutMs} ms`)));
    }, timeoutMs);
    operation.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

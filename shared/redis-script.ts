// Lua scripts run by EVALSHA, falling back to EVAL (which also caches the script on that node)
// when the node answers NOSCRIPT (first use, Redis restart, SCRIPT FLUSH). Each script lives next
// to the code that calls it; every key it touches is passed in KEYS and shares one hash tag.
//
// Why not ioredis `defineCommand`: in a Cluster pipeline ioredis groups a custom command by the
// slot of its first argument, which is the key count, not a key, so two scripts for different
// nodes can land in one pipeline and fail with "All keys in the pipeline should belong to the
// same slots allocation group". EVALSHA is a known command, whose keys ioredis finds correctly.
// The one exception is the rate-limit script (rate-limit/gcra.ts): it is never queued on a
// pipeline, and on the hottest path of every limited request defineCommand's own NOSCRIPT
// handling spares the wrapper's extra promise.

import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.ts';

/** Lua that sets `now` to the server's clock in milliseconds: one clock for every container. */
export const LUA_NOW_MS = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/** Runs the script on `client`; `lua` is its source, for callers that queue it on a pipeline. */
export type Script = ((client: RedisClient, keys: string[], args: Array<string | number>) => Promise<unknown>) & {
  readonly lua: string;
};

export function defineScript(lua: string): Script {
  const sha = createHash('sha1').update(lua).digest('hex');
  // Not an async function: one promise less per run, on every request's hottest path.
  const run = (client: RedisClient, keys: string[], args: Array<string | number>): Promise<unknown> => {
    let sent: Promise<unknown>;
    try {
      sent = client.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      return Promise.reject(error);
    }
    return sent.catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(lua, keys.length, ...keys, ...args);
    });
  };
  return Object.assign(run, { lua });
}

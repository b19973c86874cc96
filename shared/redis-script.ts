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
import type { RedisKey, RedisValue } from 'ioredis';
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

type Run = (client: RedisClient, keys: RedisKey[], args: RedisValue[]) => Promise<unknown>;

/** Runs the script on `client` with binary-safe keys and arguments; bulk replies come as Buffers. */
export type BinaryScript = Run;

type Send = (client: RedisClient, shaOrLua: string, keys: RedisKey[], args: RedisValue[]) => Promise<unknown>;

/** EVALSHA and EVAL, with replies decoded as text (ioredis's named commands) or kept as Buffers. */
interface Sender {
  bySha: Send;
  byLua: Send;
}

const TEXT_REPLIES: Sender = {
  bySha: (client, sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
  byLua: (client, lua, keys, args) => client.eval(lua, keys.length, ...keys, ...args),
};

const BUFFER_REPLIES: Sender = {
  bySha: (client, sha, keys, args) => client.callBuffer('EVALSHA', [sha, keys.length, ...keys, ...args]),
  byLua: (client, lua, keys, args) => client.callBuffer('EVAL', [lua, keys.length, ...keys, ...args]),
};

function scriptRunner(lua: string, send: Sender): Run {
  const sha = createHash('sha1').update(lua).digest('hex');
  // Not an async function: one promise less per run, on every request's hottest path.
  return (client, keys, args) => {
    let sent: Promise<unknown>;
    try {
      sent = send.bySha(client, sha, keys, args);
    } catch (error) {
      return Promise.reject(error);
    }
    return sent.catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return send.byLua(client, lua, keys, args);
    });
  };
}

export function defineScript(lua: string): Script {
  return Object.assign(scriptRunner(lua, TEXT_REPLIES), { lua });
}

/** For keys and values that are bytes, not text (the operator tools' copies of any keyspace). */
export function defineBinaryScript(lua: string): BinaryScript {
  return scriptRunner(lua, BUFFER_REPLIES);
}

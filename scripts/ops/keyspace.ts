// Walking a keyspace in batches and reading or writing many keys in one round trip per node;
// the common ground of the migration, the copy by type and the verification.
//
// Against a single server a batch is read by one Lua script call rather than a pipeline of one
// command per key: the client's cost per command (objects, promises, garbage) dominates work on
// small keys, and one call per batch removes it (about 4x faster here). A cluster spreads a batch
// over many slots, which one script may not touch, so clusters get pipelines, and so does a
// server whose ACL or configuration refuses scripts.

import type { ChainableCommander, Redis } from 'ioredis';
import { monotonicMs } from '#shared/monotonic-clock.ts';
import type { RedisClient } from '#shared/redis.ts';
import { groupByNode, isCluster } from '#shared/redis-cluster.ts';
import { nodeAddress } from '#shared/redis-info.ts';
import { defineBinaryScript } from '#shared/redis-script.ts';

/** SCAN over one node, one batch of key names per SCAN reply (binary-safe: names stay Buffers). */
export async function* scanKeys(node: Redis, match: string, count: number): AsyncGenerator<Buffer[]> {
  let cursor = '0';
  do {
    const [next, keys] = await node.scanBuffer(cursor, 'MATCH', match, 'COUNT', count);
    cursor = next.toString();
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

/**
 * The TTL to give a copy, from the source's PTTL reply: 0 for a key without expiry (RESTORE's and
 * the typed copy's "none"), the remaining milliseconds otherwise, or undefined for a key that is
 * gone: -2, and also 0, which Redis answers in the last millisecond before the key expires (copied
 * with a TTL of 0, such a key would live forever on the target).
 */
export function ttlOfCopy(pttl: number): number | undefined {
  if (pttl === -1) return 0;
  return pttl > 0 ? pttl : undefined;
}

/**
 * The TTL to write now for a key whose TTL (from `ttlOfCopy`) was asked for at `askedAt`
 * (`monotonicMs()` just before the read was sent): the time the copy took so far is taken off, so
 * the copy expires when the source's key does, up to a round trip before, or after by the time the
 * write takes to reach the target (about a second for tens of megabytes on a slow link). 0 (no
 * expiry) stays 0; a key due already gets 1 ms.
 */
export function ttlToWrite(ttl: number, askedAt: number): number {
  if (ttl === 0) return 0;
  return Math.max(1, Math.round(ttl - (monotonicMs() - askedAt)));
}

export type Reply = [error: Error | null, value: unknown];

type Queue = (pipeline: ChainableCommander, key: Buffer, index: number) => void;

/**
 * Runs `queue(pipeline, key)` for every key, with one pipeline per node that serves the keys,
 * and returns the replies in key order: `replies[i]` holds the replies queued for `keys[i]`.
 *
 * A cluster that is resharding answers MOVED or ASK for the keys of a slot on the move. A batch's
 * pipeline goes on its master's own connection, which passes those answers on as they are: a
 * cluster pipeline that got one ASK and read-only answers otherwise is sent again whole to the
 * node the ASK names, which answers "no such key" for every key it does not hold, and a copy
 * would take those keys for expired. The redirected keys are then sent again one pipeline each
 * through the cluster client, which follows a redirect that all of a pipeline got.
 */
export async function pipelinePerNode(client: RedisClient, keys: Buffer[], queue: Queue): Promise<Reply[][]> {
  const replies: Reply[][] = new Array(keys.length);
  await Promise.all(
    (await groupByNode(client, keys)).map(({ node, positions }) => runPipeline(connectionTo(client, node), keys, positions, queue, replies)),
  );
  if (isCluster(client)) {
    const redirected = keys.flatMap((_, index) => (replies[index]!.some(isRedirect) ? [index] : []));
    await Promise.all(redirected.map((index) => runPipeline(client, keys, [index], queue, replies)));
  }
  return replies;
}

/** The master named `host:port` of a cluster client, or the client itself (one server, or a slot not mapped yet). */
function connectionTo(client: RedisClient, node: string | undefined): RedisClient {
  if (node === undefined || !isCluster(client)) return client;
  return client.nodes('master').find((master) => nodeAddress(master) === node) ?? client;
}

/** One pipeline with the commands `queue` gives each key of `indexes`; their replies go to `replies[index]`. */
async function runPipeline(connection: RedisClient, keys: Buffer[], indexes: number[], queue: Queue, replies: Reply[][]): Promise<void> {
  const pipeline = connection.pipeline();
  const counts: number[] = [];
  for (const index of indexes) {
    const before = pipeline.length;
    queue(pipeline, keys[index]!, index);
    counts.push(pipeline.length - before);
  }
  const results = ((await pipeline.exec()) ?? []) as Reply[];
  let offset = 0;
  indexes.forEach((index, position) => {
    replies[index] = results.slice(offset, offset + counts[position]!);
    offset += counts[position]!;
  });
}

/** A reply that sends its command to another node: its slot moved (MOVED) or is moving (ASK). */
function isRedirect([error]: Reply): boolean {
  return error !== null && /^(MOVED|ASK) /.test(error.message);
}

/** The value of a reply, or the error it carried. */
export function valueOf<T>(reply: Reply | undefined): T {
  if (reply === undefined) throw new Error('a pipelined command got no reply');
  if (reply[0]) throw reply[0];
  return reply[1] as T;
}

/** A key name for humans: printable, and short. */
export function showKey(key: Buffer): string {
  const text = key.toString('utf8').replace(/[^\x20-\x7e]/g, '?');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The target refused a write for another reason than a DUMP format (out of memory, a module type it lacks, ...). */
export class WriteRefused extends Error {
  override name = 'WriteRefused';
  readonly key: string;
  constructor(key: Buffer, cause: Error) {
    super(cause.message, { cause });
    this.key = showKey(key);
  }
}

/** Runs each (read-only) command named in ARGV on each key: one reply per key and command. */
const READ_SCRIPT = defineBinaryScript(`
local out = {}
for _, key in ipairs(KEYS) do
  for _, command in ipairs(ARGV) do
    out[#out + 1] = redis.call(command, key)
  end
end
return out`);

/** Servers that refused a script once: not asked again. */
const refusesScripts = new WeakSet<object>();

/**
 * Errors that mean "no scripts here", as opposed to a failure of the script: an ACL or a managed
 * service that refuses EVAL, or a cluster node (CROSSSLOT: one batch spans many slots).
 */
export function scriptsRefused(error: unknown): boolean {
  return error instanceof Error && /unknown command|NOPERM|scripting is disabled|not allowed|CROSSSLOT/i.test(error.message);
}

/** Whether batches for `client` may go through a script. */
export function scriptsUsable(client: RedisClient): client is Redis {
  return !isCluster(client) && !refusesScripts.has(client);
}

export function stopUsingScripts(client: RedisClient): void {
  refusesScripts.add(client);
}

/**
 * The replies of `commands` (read-only, one key each: TYPE, PTTL, DUMP, EXISTS) for every key, in
 * one round trip per node: `replies[i][j]` is commands[j] on keys[i]. Status and bulk replies
 * come as Buffers, integers as numbers, missing values as null.
 */
export async function readPerKey(client: RedisClient, keys: Buffer[], commands: string[]): Promise<unknown[][]> {
  if (keys.length === 0) return [];
  if (scriptsUsable(client)) {
    try {
      const flat = (await READ_SCRIPT(client, keys, commands)) as unknown[];
      return keys.map((_, i) => flat.slice(i * commands.length, (i + 1) * commands.length));
    } catch (error) {
      if (!scriptsRefused(error)) throw error;
      stopUsingScripts(client);
    }
  }
  const replies = await pipelinePerNode(client, keys, (pipeline, key) => {
    for (const command of commands) pipeline.callBuffer(command, key);
  });
  return replies.map((perKey) => perKey.map((reply) => valueOf(reply)));
}

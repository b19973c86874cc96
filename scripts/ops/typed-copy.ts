// The copy for a target that cannot RESTORE the source's DUMP payloads (its Redis is older and
// reads only older RDB formats): every key is read with its type's own commands and written
// again with the same commands, which every Redis version understands. Slower than RESTORE, and
// it copies values, not encodings; for streams it copies the entries but not consumer groups.

import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '#shared/redis.ts';
import { isRedisReply } from '#shared/redis-errors.ts';
import { monotonicMs } from '#shared/monotonic-clock.ts';
import { pipelinePerNode, readPerKey, showKey, ttlOfCopy, ttlToWrite, valueOf, WriteRefused } from './keyspace.ts';

/** Elements per write command, so that a large hash or list never becomes one huge command. */
const CHUNK = 1000;

export const COPYABLE_TYPES = ['string', 'hash', 'list', 'set', 'zset', 'stream'] as const;

interface TypedValue {
  key: Buffer;
  type: string;
  /** Remaining TTL in ms as read (0: none), asked for at `askedAt` (monotonicMs). */
  ttl: number;
  askedAt: number;
  value: Buffer | Buffer[] | StreamEntry[];
}

type StreamEntry = [id: Buffer, fields: Buffer[]];

/** Queues the command that reads a whole value of `type`. */
export function queueRead(pipeline: ChainableCommander, key: Buffer, type: string): void {
  switch (type) {
    case 'string':
      pipeline.getBuffer(key);
      break;
    case 'hash':
      pipeline.callBuffer('HGETALL', key);
      break;
    case 'list':
      pipeline.lrangeBuffer(key, 0, -1);
      break;
    case 'set':
      pipeline.smembersBuffer(key);
      break;
    case 'zset':
      pipeline.callBuffer('ZRANGE', key, 0, -1, 'WITHSCORES');
      break;
    case 'stream':
      pipeline.callBuffer('XRANGE', key, '-', '+');
      break;
    default:
      throw new Error(`the key "${showKey(key)}" has the type ${type}, which only RESTORE can copy`);
  }
}

function isEmpty(value: TypedValue['value'] | null): boolean {
  return value === null || (Array.isArray(value) && value.length === 0);
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A consumer group that exists only for the instant it takes to create an empty stream. */
const EMPTY_STREAM_GROUP = 'redis-migrate:empty-stream';

function queueWrite(pipeline: ChainableCommander, { key, type, ttl: ttlAsRead, askedAt, value }: TypedValue): void {
  const ttl = ttlToWrite(ttlAsRead, askedAt);
  if (type === 'string') {
    if (ttl > 0) pipeline.set(key, value as Buffer, 'PX', ttl);
    else pipeline.set(key, value as Buffer);
    return;
  }
  pipeline.del(key);
  const items = value as Buffer[];
  switch (type) {
    case 'hash':
      for (const part of chunks(items, 2 * CHUNK)) pipeline.hset(key, ...part);
      break;
    case 'list':
      for (const part of chunks(items, CHUNK)) pipeline.rpush(key, ...part);
      break;
    case 'set':
      for (const part of chunks(items, CHUNK)) pipeline.sadd(key, ...part);
      break;
    case 'zset': {
      // ZRANGE WITHSCORES answers member, score; ZADD wants score, member.
      const pairs: Buffer[] = [];
      for (let i = 0; i < items.length; i += 2) pairs.push(items[i + 1]!, items[i]!);
      for (const part of chunks(pairs, 2 * CHUNK)) pipeline.callBuffer('ZADD', key, ...part);
      break;
    }
    case 'stream':
      if (items.length === 0) {
        // A stream whose entries were all deleted still exists; XADD would need an entry to make it.
        pipeline.xgroup('CREATE', key, EMPTY_STREAM_GROUP, '$', 'MKSTREAM');
        pipeline.xgroup('DESTROY', key, EMPTY_STREAM_GROUP);
      }
      for (const [id, fields] of value as StreamEntry[]) pipeline.callBuffer('XADD', key, id, ...fields);
      break;
  }
  if (ttl > 0) pipeline.pexpire(key, ttl);
}

/**
 * Copies `keys` from `source` to `target`, type by type; keys that expire on the way are skipped.
 * Returns how many were copied and how many had expired.
 */
export async function copyByType(source: RedisClient, target: RedisClient, keys: Buffer[]): Promise<{ copied: number; expired: number }> {
  const askedAt = monotonicMs();
  const described = await readPerKey(source, keys, ['TYPE', 'PTTL']);
  const live: Array<{ key: Buffer; type: string; ttl: number; askedAt: number }> = [];
  described.forEach((replies, index) => {
    const type = String(replies[0]);
    const ttl = ttlOfCopy(replies[1] as number);
    if (type !== 'none' && ttl !== undefined) live.push({ key: keys[index]!, type, ttl, askedAt });
  });
  const read = await pipelinePerNode(
    source,
    live.map((entry) => entry.key),
    (pipeline, key, index) => {
      queueRead(pipeline, key, live[index]!.type);
      // A stream may exist with no entries: whether it still exists tells it from one that expired.
      if (live[index]!.type === 'stream') pipeline.exists(key);
    },
  );
  const values: TypedValue[] = [];
  live.forEach((entry, index) => {
    const value = valueOf<TypedValue['value'] | null>(read[index]![0]);
    const emptyStream = entry.type === 'stream' && valueOf<number>(read[index]![1]) === 1;
    // Empty now (an empty stream aside): the key expired between its TTL and its value were read.
    if (!isEmpty(value) || emptyStream) values.push({ ...entry, value: value! });
  });
  const written = await pipelinePerNode(
    target,
    values.map((entry) => entry.key),
    (pipeline, _key, index) => queueWrite(pipeline, values[index]!),
  );
  written.forEach((replies, index) => {
    for (const reply of replies) {
      // An error the target answered is about that key (OOM, ...), told as a refused RESTORE is;
      // a lost connection is not, and is thrown as it is.
      if (isRedisReply(reply[0])) throw new WriteRefused(values[index]!.key, reply[0]);
      valueOf(reply);
    }
  });
  return { copied: values.length, expired: keys.length - values.length };
}

// Checks that a copy is equal to its source: for every source key, the type, the TTL (within a
// tolerance: both count down, read a moment apart) and the value; then that the target holds no
// extra key matching the pattern. Values are compared by their DUMP payloads first (equal bytes,
// equal values); when the payloads differ (another RDB format, another encoding after a copy by
// type), by a digest of the value read with its type's own commands.

import { createHash } from 'node:crypto';
import type { RedisClient } from '#shared/redis.ts';
import { dataNodes } from '#shared/redis-info.ts';
import { pipelinePerNode, readPerKey, scanKeys, showKey, valueOf } from './keyspace.ts';
import { COPYABLE_TYPES, queueRead } from './typed-copy.ts';

export interface VerifyOptions {
  match: string;
  batchSize: number;
  ttlToleranceMs: number;
  /** Differences kept as examples for the report; all are counted. */
  examples?: number;
}

export interface VerifyResult {
  /** Source keys compared. */
  compared: number;
  /** Keys matching the pattern on the target. */
  targetKeys: number;
  differences: number;
  examples: string[];
}

interface KeyState {
  type: string;
  ttl: number;
  payload: Buffer | null;
}

const DESCRIBE = ['TYPE', 'PTTL', 'DUMP'];

function keyStateOf(replies: unknown[]): KeyState {
  return { type: String(replies[0]), ttl: replies[1] as number, payload: replies[2] as Buffer | null };
}

/** A digest of a value that does not depend on its encoding (set and hash order included). */
function digest(type: string, value: unknown): string {
  const hash = createHash('sha256');
  const add = (part: Buffer) => hash.update(`${part.length}:`).update(part);
  if (type === 'string') add(value as Buffer);
  else if (type === 'set') for (const member of [...(value as Buffer[])].sort(Buffer.compare)) add(member);
  else if (type === 'hash') {
    const items = value as Buffer[];
    const pairs: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < items.length; i += 2) pairs.push([items[i]!, items[i + 1]!]);
    pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
    for (const [field, fieldValue] of pairs) {
      add(field);
      add(fieldValue);
    }
  } else if (type === 'stream') {
    for (const [id, fields] of value as Array<[Buffer, Buffer[]]>) {
      add(id);
      for (const field of fields) add(field);
    }
  } else for (const item of value as Buffer[]) add(item); // list and zset: order is part of the value
  return hash.digest('hex');
}

async function digests(client: RedisClient, keys: Buffer[], types: string[]): Promise<string[]> {
  const replies = await pipelinePerNode(client, keys, (pipeline, key, index) => queueRead(pipeline, key, types[index]!));
  return replies.map((reply, index) => digest(types[index]!, valueOf(reply[0])));
}

function ttlText(ttl: number): string {
  return ttl === -1 ? 'no TTL' : `TTL ${ttl} ms`;
}

export async function verifyCopy(source: RedisClient, target: RedisClient, options: VerifyOptions): Promise<VerifyResult> {
  const result: VerifyResult = { compared: 0, targetKeys: 0, differences: 0, examples: [] };
  const limit = options.examples ?? 10;
  const tolerance = options.ttlToleranceMs;
  const differ = (key: Buffer, what: string) => {
    result.differences += 1;
    if (result.examples.length < limit) result.examples.push(`${showKey(key)}: ${what}`);
  };
  /** Gone, or about to be: a key whose TTL runs out within the tolerance may be missing on one side. */
  const expiring = (ttl: number) => ttl === -2 || (ttl >= 0 && ttl <= tolerance);

  for (const node of await dataNodes(source)) {
    for await (const keys of scanKeys(node, options.match, options.batchSize)) {
      const [sourceReplies, targetReplies] = await Promise.all([readPerKey(source, keys, DESCRIBE), readPerKey(target, keys, DESCRIBE)]);
      const unlike: number[] = [];
      keys.forEach((key, index) => {
        const from = keyStateOf(sourceReplies[index]!);
        const to = keyStateOf(targetReplies[index]!);
        if (from.type === 'none') return; // expired on the source since SCAN
        result.compared += 1;
        if (to.type === 'none') {
          if (!expiring(from.ttl)) differ(key, 'missing on the target');
          return;
        }
        if (from.type !== to.type) return differ(key, `type ${from.type} on the source, ${to.type} on the target`);
        if ((from.ttl === -1) !== (to.ttl === -1) || Math.abs(from.ttl - to.ttl) > tolerance) {
          return differ(key, `${ttlText(from.ttl)} on the source, ${ttlText(to.ttl)} on the target`);
        }
        if (from.payload !== null && to.payload !== null && !from.payload.equals(to.payload)) unlike.push(index);
      });
      await compareValues(source, target, unlike.map((index) => keys[index]!), unlike.map((index) => keyStateOf(sourceReplies[index]!).type), differ);
    }
  }
  await countTarget(source, target, options, result, differ, expiring);
  return result;
}

/** Keys whose DUMP payloads differ: equal values in other encodings, or real differences. */
async function compareValues(
  source: RedisClient,
  target: RedisClient,
  keys: Buffer[],
  types: string[],
  differ: (key: Buffer, what: string) => void,
): Promise<void> {
  const comparable = keys.map((_, index) => (COPYABLE_TYPES as readonly string[]).includes(types[index]!));
  keys.forEach((key, index) => {
    if (!comparable[index]) differ(key, `the DUMP payloads differ and a ${types[index]} cannot be compared otherwise`);
  });
  const keep = keys.filter((_, index) => comparable[index]);
  const keepTypes = types.filter((_, index) => comparable[index]);
  if (keep.length === 0) return;
  const [fromDigests, toDigests] = await Promise.all([digests(source, keep, keepTypes), digests(target, keep, keepTypes)]);
  keep.forEach((key, index) => {
    if (fromDigests[index] !== toDigests[index]) differ(key, 'the values differ');
  });
}

/** The target must hold no key matching the pattern that the source lacks. */
async function countTarget(
  source: RedisClient,
  target: RedisClient,
  options: VerifyOptions,
  result: VerifyResult,
  differ: (key: Buffer, what: string) => void,
  expiring: (ttl: number) => boolean,
): Promise<void> {
  for (const node of await dataNodes(target)) {
    for await (const keys of scanKeys(node, options.match, options.batchSize)) {
      result.targetKeys += keys.length;
      const [onSource, targetTtls] = await Promise.all([readPerKey(source, keys, ['EXISTS']), readPerKey(target, keys, ['PTTL'])]);
      keys.forEach((key, index) => {
        if (onSource[index]![0] === 0 && !expiring(targetTtls[index]![0] as number)) {
          differ(key, 'on the target only');
        }
      });
    }
  }
}

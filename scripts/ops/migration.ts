// Copies keys from one Redis to another: SCAN on every data node of the source, PTTL and DUMP
// pipelined, then RESTORE ... REPLACE with the remaining TTL less the time since it was read (the
// copy expires when the original does), one pipeline per target node.
// Several batches are in flight at once, so both servers and the link stay busy:
//
//   SCAN ─► PTTL+DUMP × n ─► RESTORE × n (per target node)
//        SCAN ─► PTTL+DUMP × n ─► RESTORE × n
//             SCAN ─► ...                       at most `window` batches in flight
//
// A key that expires between SCAN and DUMP (PTTL -2, or DUMP nil) is skipped: it is gone on the
// source too. Re-running the copy is safe: RESTORE ... REPLACE overwrites what it wrote before.

import type { Redis } from 'ioredis';
import type { RedisClient } from '#shared/redis.ts';
import { isRedisReply } from '#shared/redis-errors.ts';
import { dataNodes } from '#shared/redis-info.ts';
import { defineBinaryScript } from '#shared/redis-script.ts';
import { monotonicMs } from '#shared/monotonic-clock.ts';
import { pipelinePerNode, readPerKey, scanKeys, scriptsRefused, scriptsUsable, stopUsingScripts, ttlOfCopy, ttlToWrite, WriteRefused } from './keyspace.ts';
import { copyByType } from './typed-copy.ts';

export type CopyMethod = 'restore' | 'by-type';

export interface CopyOptions {
  match: string;
  /** Keys per SCAN and per pipeline. */
  batchSize: number;
  /** Batches in flight at once. */
  window: number;
  method: CopyMethod;
  /** Switch to the copy by type when the target cannot read the source's DUMP payloads. */
  fallbackToTypes: boolean;
  onProgress?: (stats: CopyStats) => void;
  /** Called once, when the copy switches to the copy by type; `rdbVersion` is the source's format. */
  onFallback?: (rdbVersion: number) => void;
}

export interface CopyStats {
  copied: number;
  /** Keys that expired between SCAN and their copy (gone on the source as well). */
  expired: number;
  /** Of `copied`, the keys copied type by type. */
  copiedByType: number;
}

/** The target's Redis cannot read the source's DUMP format (it is older than the source's). */
export class DumpFormatRejected extends Error {
  override name = 'DumpFormatRejected';
  readonly rdbVersion: number;
  constructor(rdbVersion: number) {
    super(`the target cannot read DUMP payloads of RDB format ${rdbVersion}`);
    this.rdbVersion = rdbVersion;
  }
}

const FORMAT_REJECTED = /DUMP payload version or checksum are wrong/i;

/** The RDB format version a DUMP payload was written in: 2 bytes before the 8-byte CRC64. */
function rdbVersionOf(payload: Buffer): number {
  return payload.length >= 10 ? payload.readUInt16LE(payload.length - 10) : 0;
}

interface Dumped {
  key: Buffer;
  /** The remaining TTL read with the payload (0: none), asked for at `askedAt` (monotonicMs). */
  ttl: number;
  askedAt: number;
  payload: Buffer;
}

// The restore runs as one script call per batch against a single server (see keyspace.ts for why).

/** RESTORE ... REPLACE of each key (ARGV: ttl, payload per key); answers the refused ones as position, error. */
const RESTORE_SCRIPT = defineBinaryScript(`
local refused = {}
for i, key in ipairs(KEYS) do
  local reply = redis.pcall('RESTORE', key, ARGV[2 * i - 1], ARGV[2 * i], 'REPLACE')
  if type(reply) == 'table' and reply.err then
    refused[#refused + 1] = i
    refused[#refused + 1] = reply.err
  end
end
return refused`);

async function dumpBatch(source: RedisClient, keys: Buffer[]): Promise<{ dumped: Dumped[]; expired: number }> {
  const askedAt = monotonicMs();
  const replies = await readPerKey(source, keys, ['PTTL', 'DUMP']);
  const dumped: Dumped[] = [];
  replies.forEach(([pttl, payload], index) => {
    // Gone since SCAN (or in its last millisecond), or DUMP nil when it expired between the two.
    const ttl = ttlOfCopy(pttl as number);
    if (payload !== null && ttl !== undefined) dumped.push({ key: keys[index]!, ttl, askedAt, payload: payload as Buffer });
  });
  return { dumped, expired: keys.length - dumped.length };
}

/** Payload bytes per script call: well under Redis's 512 MB argument and 1 GB query limits. */
const SCRIPT_BYTES = 8 * 2 ** 20;

function byPayloadSize(dumped: Dumped[]): Dumped[][] {
  const parts: Dumped[][] = [];
  let part: Dumped[] = [];
  let bytes = 0;
  for (const entry of dumped) {
    if (part.length > 0 && bytes + entry.payload.length > SCRIPT_BYTES) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(entry);
    bytes += entry.payload.length;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

/** Sorts refusals: a payload format the target cannot read is returned, anything else is thrown. */
function rejectedFormats(refusals: Array<[entry: Dumped, error: Error]>): Dumped[] {
  const rejected: Dumped[] = [];
  for (const [entry, error] of refusals) {
    if (FORMAT_REJECTED.test(error.message)) rejected.push(entry);
    else throw new WriteRefused(entry.key, error);
  }
  return rejected;
}

async function restoreByScript(target: Redis, dumped: Dumped[]): Promise<Dumped[]> {
  const refusals: Array<[Dumped, Error]> = [];
  for (const part of byPayloadSize(dumped)) {
    const args: Array<Buffer | number> = [];
    for (const entry of part) args.push(ttlToWrite(entry.ttl, entry.askedAt), entry.payload);
    let reply: Array<number | Buffer>;
    try {
      reply = (await RESTORE_SCRIPT(target, part.map((entry) => entry.key), args)) as Array<number | Buffer>;
    } catch (error) {
      // An error answered by the target is about what was written; a lost or slow connection is
      // not (it is told as such, with what to do, rather than blamed on the batch's first key).
      if (isRedisReply(error) && !scriptsRefused(error)) throw new WriteRefused(part[0]!.key, error);
      throw error;
    }
    for (let i = 0; i < reply.length; i += 2) refusals.push([part[(reply[i] as number) - 1]!, new Error(String(reply[i + 1]))]);
  }
  return rejectedFormats(refusals);
}

/** RESTOREs every payload; returns the keys whose payload the target's format rejected. */
async function restoreBatch(target: RedisClient, dumped: Dumped[]): Promise<Dumped[]> {
  if (scriptsUsable(target)) {
    try {
      return await restoreByScript(target, dumped);
    } catch (error) {
      if (!scriptsRefused(error)) throw error;
      stopUsingScripts(target);
    }
  }
  const replies = await pipelinePerNode(
    target,
    dumped.map((entry) => entry.key),
    (pipeline, key, index) => pipeline.restore(key, ttlToWrite(dumped[index]!.ttl, dumped[index]!.askedAt), dumped[index]!.payload, 'REPLACE'),
  );
  const refusals: Array<[Dumped, Error]> = [];
  replies.forEach(([reply], index) => {
    if (reply?.[0]) refusals.push([dumped[index]!, reply[0]]);
  });
  return rejectedFormats(refusals);
}

export async function copyKeys(source: RedisClient, target: RedisClient, options: CopyOptions): Promise<CopyStats> {
  const stats: CopyStats = { copied: 0, expired: 0, copiedByType: 0 };
  let method = options.method;

  const byType = async (keys: Buffer[]) => {
    const result = await copyByType(source, target, keys);
    stats.copied += result.copied;
    stats.copiedByType += result.copied;
    stats.expired += result.expired;
  };

  const copyBatch = async (keys: Buffer[]) => {
    if (method === 'by-type') return byType(keys);
    const { dumped, expired } = await dumpBatch(source, keys);
    stats.expired += expired;
    const rejected = await restoreBatch(target, dumped);
    stats.copied += dumped.length - rejected.length;
    if (rejected.length === 0) return;
    const rdbVersion = rdbVersionOf(rejected[0]!.payload);
    if (!options.fallbackToTypes) throw new DumpFormatRejected(rdbVersion);
    if (method === 'restore') {
      method = 'by-type';
      options.onFallback?.(rdbVersion);
    }
    await byType(rejected.map((entry) => entry.key));
  };

  const inFlight: Array<Promise<void>> = [];
  let failure: unknown;
  for (const node of await dataNodes(source)) {
    for await (const keys of scanKeys(node, options.match, options.batchSize)) {
      if (failure !== undefined) break;
      inFlight.push(
        copyBatch(keys).then(
          () => options.onProgress?.(stats),
          (error: unknown) => {
            failure ??= error;
          },
        ),
      );
      if (inFlight.length >= options.window) await inFlight.shift();
    }
    if (failure !== undefined) break;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  return stats;
}

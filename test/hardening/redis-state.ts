// What a Redis holds, reduced to something two moments can be compared by: the key count and,
// per key, a digest of its serialised value (DUMP) and whether it has a TTL. Used to show that a
// refused request wrote nothing.
//
// Why the TTL is compared only as "has one or not": every authenticated request slides its
// session's expiry (PEXPIREAT in the auth middleware's one round trip), which is the designed
// behaviour of sliding sessions and changes no value.

import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface RedisState {
  /** DBSIZE: every key, the ignored ones included. */
  dbsize: number;
  /** Keys compared (DBSIZE minus the ignored keys). */
  size: number;
  /** key → digest of DUMP plus a TTL marker. */
  entries: Map<string, string>;
}

/** Keys that a test allows to change (e.g. the rate-limit state that refused requests spend). */
export type KeyFilter = (key: string) => boolean;

export async function redisState(admin: Redis, ignore: KeyFilter = () => false): Promise<RedisState> {
  const dbsize = await admin.dbsize();
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  const kept = keys.filter((key) => !ignore(key)).sort();
  const pipeline = admin.pipeline();
  for (const key of kept) pipeline.dumpBuffer(key).pttl(key);
  const replies = (await pipeline.exec()) ?? [];
  const entries = new Map<string, string>();
  kept.forEach((key, index) => {
    const dump = replies[index * 2]?.[1] as Buffer | null;
    const ttl = replies[index * 2 + 1]?.[1] as number;
    const marker = ttl === -1 ? 'no-ttl' : ttl === -2 ? 'gone' : 'ttl';
    entries.set(key, `${createHash('sha256').update(dump ?? 'gone').digest('hex')}:${marker}`);
  });
  return { dbsize, size: kept.length, entries };
}

/** The keys added, removed or changed between two states (empty when equal). */
export function stateDifference(before: RedisState, after: RedisState): string[] {
  const changed: string[] = [];
  for (const [key, value] of after.entries) {
    if (!before.entries.has(key)) changed.push(`added ${key}`);
    else if (before.entries.get(key) !== value) changed.push(`changed ${key}`);
  }
  for (const key of before.entries.keys()) if (!after.entries.has(key)) changed.push(`removed ${key}`);
  return changed;
}

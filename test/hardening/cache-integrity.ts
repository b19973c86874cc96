// "No cache entry half-written": every cache key in Redis carries a TTL and a value its reader can
// use. Chat answers are JSON with the fields the route serves; embedding vectors are float32
// (4 bytes a dimension); single-flight locks always expire.

import type { Redis } from 'ioredis';

export interface CacheAudit {
  answers: number;
  locks: number;
  vectors: number;
  /** One line per key that breaks a rule (empty when the cache is sound). */
  faults: string[];
}

async function keysMatching(admin: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

function isChatAnswer(text: string): boolean {
  try {
    const answer = JSON.parse(text) as Record<string, unknown>;
    return typeof answer['content'] === 'string' && typeof answer['stopReason'] === 'string' && typeof answer['usage'] === 'object';
  } catch {
    return false;
  }
}

/** Checks every response-cache and embedding-cache key; `dimensions` is the configured vector size. */
export async function auditCaches(admin: Redis, dimensions: number): Promise<CacheAudit> {
  const audit: CacheAudit = { answers: 0, locks: 0, vectors: 0, faults: [] };
  for (const key of await keysMatching(admin, 'tc:{rc:*')) {
    const ttl = await admin.pttl(key);
    if (ttl === -2) continue; // expired meanwhile
    if (ttl < 0) audit.faults.push(`${key}: no TTL`);
    // A single-flight lock, or the outcome it shares with its waiters: short-lived, never an answer.
    if (key.endsWith(':lock') || key.endsWith(':outcome')) {
      audit.locks += 1;
    } else {
      audit.answers += 1;
      const value = await admin.get(key);
      if (value !== null && !isChatAnswer(value)) audit.faults.push(`${key}: not a chat answer`);
    }
  }
  for (const key of await keysMatching(admin, 'tc:{e*')) {
    const ttl = await admin.pttl(key);
    if (ttl === -2) continue;
    audit.vectors += 1;
    if (ttl < 0) audit.faults.push(`${key}: no TTL`);
    const value = await admin.getBuffer(key);
    if (value !== null && value.length !== dimensions * 4) audit.faults.push(`${key}: ${value.length} bytes, not ${dimensions} float32`);
  }
  return audit;
}

// What a copy would do, without writing anything (--dry-run): how many keys of each type, how
// many with a TTL, and how many already exist on the target and would be replaced.

import type { RedisClient } from '#shared/redis.ts';
import { dataNodes } from '#shared/redis-info.ts';
import { readPerKey, scanKeys } from './keyspace.ts';

export interface CopyPlan {
  keys: number;
  byType: Map<string, number>;
  withTtl: number;
  existingOnTarget: number;
}

export async function planCopy(source: RedisClient, target: RedisClient, match: string, batchSize: number): Promise<CopyPlan> {
  const plan: CopyPlan = { keys: 0, byType: new Map(), withTtl: 0, existingOnTarget: 0 };
  for (const node of await dataNodes(source)) {
    for await (const keys of scanKeys(node, match, batchSize)) {
      const [described, existing] = await Promise.all([readPerKey(source, keys, ['TYPE', 'PTTL']), readPerKey(target, keys, ['EXISTS'])]);
      keys.forEach((_, index) => {
        const [type, ttl] = [String(described[index]![0]), described[index]![1] as number];
        if (type === 'none') return;
        plan.keys += 1;
        plan.byType.set(type, (plan.byType.get(type) ?? 0) + 1);
        if (ttl >= 0) plan.withTtl += 1;
        plan.existingOnTarget += existing[index]![0] as number;
      });
    }
  }
  return plan;
}

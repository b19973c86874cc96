// The first check of a brand-new Redis client, issued in the same tick as another command of
// that client (a cold container serving concurrent requests, as `npm run dev` does). The script is
// defined on the client at that moment (under ioredis auto-pipelining, a batch opened just before
// lacked it and failed: the client must not batch that way).

import { describe, expect, it } from 'vitest';
import { checkRateLimit } from '../../shared/rate-limit/limiter.ts';
import { withRedis } from '../../shared/redis.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';

describe('the first rate-limit check of a new Redis client', () => {
  const redis = useStandaloneRedis();

  it('succeeds alongside another command issued in the same tick', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const policies = [{ name: '5-per-1m', limit: 5, windowMs: 60_000 }];

    const settled = await Promise.allSettled([
      withRedis((client) => client.get('any key')),
      checkRateLimit({ bucket: 'cold', identity: 'someone', policies }),
      withRedis((client) => client.set('another key', '1')),
    ]);

    expect(settled.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
  });
});

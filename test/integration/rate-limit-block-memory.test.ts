// The in-process memory of refused identities: while blocked, checks cost no Redis command; the
// block ends when Redis said a unit would fit again; the memory stays bounded.

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { assert, describe, expect, it } from 'vitest';
import type { RateLimitPolicy } from '../../shared/config.ts';
import { MAX_REMEMBERED_BLOCKS, rememberBlock, rememberedBlockCount, recallBlock, forgetBlocks } from '../../shared/rate-limit/blocked.ts';
import { reserveAttempt } from '../../shared/rate-limit/attempts.ts';
import { checkRateLimit, type RateLimitDecision, type RateLimitRefusal, type RateLimitRequest } from '../../shared/rate-limit/limiter.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function commandsProcessed(inspector: Redis): Promise<number> {
  const info = await inspector.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)![1]);
}

/** Scripts run by the server so far (EVALSHA and EVAL calls, not the commands inside them). */
async function scriptRuns(inspector: Redis): Promise<number> {
  const stats = await inspector.info('commandstats');
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
}

describe('the in-process block memory', () => {
  const redis = useStandaloneRedis();
  const request = (policies: RateLimitPolicy[]): RateLimitRequest => ({ bucket: 'memory', identity: randomUUID(), policies });

  it('refuses a blocked identity without sending Redis a single command', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const limited = request([{ name: '1-per-1h', limit: 1, windowMs: 3_600_000 }]);
    await checkRateLimit(limited);
    await checkRateLimit(limited); // refused by Redis: remembered from now on
    const before = await commandsProcessed(redis.admin);

    const refusals: RateLimitDecision[] = [];
    for (let i = 0; i < 100; i += 1) refusals.push(await checkRateLimit(limited));
    const after = await commandsProcessed(redis.admin);

    expect(refusals.every((decision) => !decision.allowed && decision.retryAfterMs > 3_598_000)).toBe(true);
    expect(after - before).toBe(1); // the first INFO itself
  });

  it('remembers an attempt refused by failures, never one refused only by attempts in flight', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const busy = request([{ name: '1-per-1h', limit: 1, windowMs: 3_600_000 }]);
    const spent = request([{ name: '1-per-1h', limit: 1, windowMs: 3_600_000 }]);
    const inFlight = await reserveAttempt(busy);
    await (await reserveAttempt(spent)).settle(true);

    const [byInFlight, byFailures] = [await reserveAttempt(busy), await reserveAttempt(spent)];
    await inFlight.settle(false);
    const before = await scriptRuns(redis.admin);
    const [busyAgain, spentAgain] = [await reserveAttempt(busy), await reserveAttempt(spent)];
    const runs = (await scriptRuns(redis.admin)) - before;

    assert(!byInFlight.decision.allowed && !byFailures.decision.allowed);
    expect([byInFlight.decision.retryAfterMs, byFailures.decision.retryAfterMs > 3_000_000]).toEqual([1000, true]);
    expect([busyAgain.decision.allowed, spentAgain.decision.allowed]).toEqual([true, false]);
    expect(runs).toBe(1); // the busy identity's reservation: the spent one is refused from memory
  });

  it('remembers no refusal a peek read: the units it found spent may be held by attempts in flight', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const busy = request([{ name: '1-per-1h', limit: 1, windowMs: 3_600_000 }]);
    const inFlight = await reserveAttempt(busy);
    const peeked = await checkRateLimit({ ...busy, peek: true }); // the headers of a malformed login body, say

    const next = await reserveAttempt(busy);
    await inFlight.settle(false);

    expect(peeked.allowed).toBe(false);
    assert(!next.decision.allowed);
    expect(next.decision.retryAfterMs).toBe(1000); // refused by the attempt in flight only, not for the hour
  });

  it('asks Redis again once the retry time has passed', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const fast = request([{ name: '1-per-300ms', limit: 1, windowMs: 300 }]);
    await checkRateLimit(fast);
    const refused = await checkRateLimit(fast);
    assert(!refused.allowed);

    await sleep(refused.retryAfterMs + 30);
    const later = await checkRateLimit(fast);

    expect(later.allowed).toBe(true);
  });

  it('still asks Redis for a smaller cost when only the refused cost did not fit', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const tokens = { ...request([{ name: '10-per-1h', limit: 10, windowMs: 3_600_000 }]) };
    await checkRateLimit({ ...tokens, cost: 8 });

    const tooMuch = await checkRateLimit({ ...tokens, cost: 5 });
    const small = await checkRateLimit({ ...tokens, cost: 2 });

    expect(tooMuch.allowed).toBe(false);
    expect(small.allowed).toBe(true);
  });

  it('keeps at most a bounded number of blocked identities, dropping the oldest', () => {
    forgetBlocks();
    const refusal: RateLimitRefusal = { allowed: false, retryAfterMs: 60_000, states: [] };

    for (let i = 0; i <= MAX_REMEMBERED_BLOCKS; i += 1) rememberBlock('bounded', `identity-${i}`, refusal, 1, 60_000);

    expect(rememberedBlockCount()).toBe(MAX_REMEMBERED_BLOCKS);
    expect(recallBlock('bounded', 'identity-0', 1)).toBeUndefined();
    expect(recallBlock('bounded', `identity-${MAX_REMEMBERED_BLOCKS}`, 1)?.allowed).toBe(false);
    forgetBlocks();
  });
});

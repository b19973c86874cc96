// Single-flight for cached answers on a real Redis, standalone and cluster: one computation for
// concurrent misses in a container and across containers, locks and outcome records that expire,
// the round trips of each path, and Redis down (fail fast or compute uncached).

import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { singleFlight, type Computed, type FlightOptions, type Keep } from '../../shared/cache/single-flight.ts';
import { digest, responseCacheKeys } from '../../shared/keys.ts';
import { HttpProblem } from '../../shared/problem.ts';
import { useEnvironment } from '../support/env.ts';
import { startRoundTripProxy, type RoundTripProxy } from '../support/round-trip-proxy.ts';
import { startRedisCluster, startStandaloneRedis, type RedisCluster, type RedisServer } from '../support/redis.ts';

let counter = 0;
const freshKeys = () => responseCacheKeys('test', digest(`question-${Date.now()}-${counter++}`));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A computation that counts its calls and answers after `delayMs`. */
function countedCompute(value = '{"answer":42}', delayMs = 0, keep: Keep = 'cache') {
  const compute = Object.assign(
    async (): Promise<Computed> => {
      compute.calls += 1;
      await sleep(delayMs);
      return { value, keep };
    },
    { calls: 0 },
  );
  return compute;
}

function flight(keys: FlightOptions['keys'], compute: FlightOptions['compute'], extra: Partial<FlightOptions> = {}) {
  return singleFlight({ keys, ttlSeconds: 60, lockMs: 5_000, waitMs: 5_000, compute, ...extra });
}

describe('single-flight over a standalone Redis', () => {
  let redis: RedisServer;
  let proxy: RoundTripProxy;
  let inspect: Redis;
  beforeAll(async () => {
    redis = await startStandaloneRedis();
    proxy = await startRoundTripProxy(redis.port);
    inspect = new Redis(redis.port, '127.0.0.1');
  });
  beforeEach(() => useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` }));
  afterAll(async () => {
    await useEnvironment({});
    inspect.disconnect();
    await proxy.close();
    await redis.stop();
  });

  it('computes a miss, stores the value with the TTL and releases its lock', async () => {
    const keys = freshKeys();
    const compute = countedCompute();

    const result = await flight(keys, compute);

    expect(result).toEqual({ value: '{"answer":42}', outcome: 'computed' });
    expect(await inspect.get(keys.answer)).toBe('{"answer":42}');
    const ttl = await inspect.ttl(keys.answer);
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(60);
    expect(await inspect.exists(keys.lock)).toBe(0);
  });

  it('serves a stored value with exactly one round trip and no computation', async () => {
    const keys = freshKeys();
    await inspect.set(keys.answer, '{"answer":"stored"}');
    const compute = countedCompute();
    await flight(freshKeys(), countedCompute()); // the connection is up before counting
    proxy.reset();

    const result = await flight(keys, compute);

    expect(result).toEqual({ value: '{"answer":"stored"}', outcome: 'hit' });
    expect(compute.calls).toBe(0);
    expect(proxy.roundTrips()).toBe(1);
  });

  it('costs one round trip to read, one to lock and one to store on a miss', async () => {
    await flight(freshKeys(), countedCompute());
    proxy.reset();

    await flight(freshKeys(), countedCompute());

    expect(proxy.roundTrips()).toBe(3);
  });

  it('keeps a value marked for the waiters only as their outcome record, for about a second, and releases the lock', async () => {
    const keys = freshKeys();

    const result = await flight(keys, countedCompute('{"refused":true}', 0, 'waiters'));

    expect(result.value).toBe('{"refused":true}');
    expect(await inspect.exists(keys.answer, keys.lock)).toBe(0);
    expect(JSON.parse((await inspect.get(keys.outcome)) ?? 'null')).toEqual({ answer: '{"refused":true}' });
    expect(await inspect.pttl(keys.outcome)).toBeGreaterThan(500);
    expect(await inspect.pttl(keys.outcome)).toBeLessThanOrEqual(1_000);
  });

  it('keeps nothing of a value marked to be kept nowhere, and still releases the lock', async () => {
    const keys = freshKeys();

    const result = await flight(keys, countedCompute('{"private":true}', 0, 'nowhere'));

    expect(result.value).toBe('{"private":true}');
    expect(await inspect.exists(keys.answer, keys.lock, keys.outcome)).toBe(0);
  });

  it('stores nothing when the computation fails, releases the lock at once and passes the error on', async () => {
    const keys = freshKeys();
    const failure = new HttpProblem(502, 'upstream-error');

    await expect(flight(keys, () => Promise.reject(failure))).rejects.toBe(failure);

    expect(await inspect.exists(keys.answer, keys.lock)).toBe(0);
  });

  it('records an upstream failure beside the lock as the problem the client sees, without its cause', async () => {
    const keys = freshKeys();
    const failure = new HttpProblem(429, 'upstream-rate-limited', {
      detail: 'Claude is rate limiting this service; try again later.',
      retryAfterSeconds: 30,
      cause: new Error('anthropic 429 rate_limit_error: key sk-ant-secret'),
    });

    await flight(keys, () => Promise.reject(failure)).catch(() => {});

    expect(JSON.parse((await inspect.get(keys.outcome)) ?? 'null')).toEqual({
      problem: {
        status: 429,
        slug: 'upstream-rate-limited',
        detail: 'Claude is rate limiting this service; try again later.',
        retryAfter: '30',
      },
    });
  });

  it('keeps a failure record no longer than the Retry-After, and never beyond five seconds', async () => {
    const [short, long] = [freshKeys(), freshKeys()];

    await flight(short, () => Promise.reject(new HttpProblem(503, 'upstream-overloaded', { retryAfterSeconds: 2 }))).catch(() => {});
    await flight(long, () => Promise.reject(new HttpProblem(429, 'upstream-rate-limited', { retryAfterSeconds: 30 }))).catch(() => {});

    expect(await inspect.pttl(short.outcome)).toBeGreaterThan(1_500);
    expect(await inspect.pttl(short.outcome)).toBeLessThanOrEqual(2_000);
    expect(await inspect.pttl(long.outcome)).toBeGreaterThan(4_500);
    expect(await inspect.pttl(long.outcome)).toBeLessThanOrEqual(5_000);
  });

  it('keeps a failure record without Retry-After for about a second', async () => {
    const keys = freshKeys();

    await flight(keys, () => Promise.reject(new HttpProblem(502, 'upstream-error'))).catch(() => {});

    expect(await inspect.pttl(keys.outcome)).toBeGreaterThan(500);
    expect(await inspect.pttl(keys.outcome)).toBeLessThanOrEqual(1_000);
  });

  it('records a conversation too long for the model (422): every identical request would hear the same', async () => {
    const keys = freshKeys();

    await flight(keys, () => Promise.reject(new HttpProblem(422, 'conversation-too-long'))).catch(() => {});

    expect(JSON.parse((await inspect.get(keys.outcome)) ?? 'null')).toEqual({ problem: { status: 422, slug: 'conversation-too-long' } });
  });

  it('records nothing for an error that is not an upstream failure, nor for Redis down', async () => {
    const [bug, redisDown] = [freshKeys(), freshKeys()];

    await flight(bug, () => Promise.reject(new TypeError('undefined is not a function'))).catch(() => {});
    await flight(redisDown, () => Promise.reject(new HttpProblem(503, 'redis-unavailable'))).catch(() => {});

    expect(await inspect.exists(bug.outcome, bug.lock, redisDown.outcome, redisDown.lock)).toBe(0);
  });

  it('answers the recorded problem of the holder it waited for, without computing', async () => {
    const keys = freshKeys();
    await inspect.set(keys.lock, 'another-container', 'PX', 5_000);
    const compute = countedCompute();
    const record = { status: 429, slug: 'upstream-rate-limited', detail: 'Later.', retryAfter: '30' };
    setTimeout(() => void inspect.multi().set(keys.outcome, JSON.stringify({ problem: record }), 'PX', 5_000).del(keys.lock).exec(), 300);

    const error = (await flight(keys, compute).catch((caught: unknown) => caught)) as HttpProblem;

    expect(compute.calls).toBe(0);
    expect(error).toBeInstanceOf(HttpProblem);
    expect(error.toResponse()).toEqual(new HttpProblem(429, 'upstream-rate-limited', { detail: 'Later.', headers: { 'Retry-After': '30' } }).toResponse());
  });

  it('serves the answer the holder it waited for kept for its waiters, without computing', async () => {
    const keys = freshKeys();
    await inspect.set(keys.lock, 'another-container', 'PX', 5_000);
    const compute = countedCompute();
    setTimeout(() => void inspect.multi().set(keys.outcome, JSON.stringify({ answer: '{"refused":true}' }), 'PX', 1_000).del(keys.lock).exec(), 300);

    const result = await flight(keys, compute);

    expect(result).toEqual({ value: '{"refused":true}', outcome: 'shared' });
    expect(compute.calls).toBe(0);
  });

  it('computes when it finds an outcome record but no lock, and clears the record as it takes the lock', async () => {
    const keys = freshKeys();
    await inspect.set(keys.outcome, JSON.stringify({ problem: { status: 502, slug: 'upstream-error' } }), 'PX', 5_000);
    const compute = countedCompute();

    const result = await flight(keys, compute);

    expect(result.outcome).toBe('computed');
    expect(compute.calls).toBe(1);
    expect(await inspect.exists(keys.outcome)).toBe(0);
  });

  it('records no failure once its lock expired under it and belongs to someone else', async () => {
    const keys = freshKeys();
    const slowFailure = async (): Promise<Computed> => {
      await sleep(400);
      throw new HttpProblem(502, 'upstream-error');
    };
    const running = flight(keys, slowFailure, { lockMs: 100 }).catch(() => {});
    await sleep(200);
    await inspect.set(keys.lock, 'next-holder', 'PX', 10_000);

    await running;

    expect(await inspect.exists(keys.outcome)).toBe(0);
    expect(await inspect.get(keys.lock)).toBe('next-holder');
  });

  it('computes once for 20 identical concurrent requests in one container', async () => {
    const keys = freshKeys();
    const compute = countedCompute('{"answer":"once"}', 100);

    const results = await Promise.all(Array.from({ length: 20 }, () => flight(keys, compute)));

    expect(compute.calls).toBe(1);
    expect(results.every((result) => result.value === '{"answer":"once"}')).toBe(true);
    expect(results.filter((result) => result.outcome === 'computed')).toHaveLength(1);
  });

  it('gives each waiter in the container its own copy of the computation\'s problem', async () => {
    const keys = freshKeys();
    let calls = 0;
    const failing = async (): Promise<Computed> => {
      calls += 1;
      await sleep(50);
      throw new HttpProblem(429, 'upstream-rate-limited', { retryAfterSeconds: 9 });
    };

    const outcomes = await Promise.allSettled([flight(keys, failing), flight(keys, failing)]);

    expect(calls).toBe(1);
    const [first, second] = outcomes.map((outcome) => (outcome as PromiseRejectedResult).reason as HttpProblem);
    expect(second?.status).toBe(429);
    expect(second?.headers['Retry-After']).toBe('9');
    expect(second?.headers).not.toBe(first?.headers);
  });

  it('waits for the answer of another container that holds the lock, without computing', async () => {
    const keys = freshKeys();
    await inspect.set(keys.lock, 'another-container', 'PX', 5_000);
    const compute = countedCompute();
    setTimeout(() => void inspect.set(keys.answer, '{"answer":"theirs"}'), 300);

    const result = await flight(keys, compute);

    expect(result).toEqual({ value: '{"answer":"theirs"}', outcome: 'shared' });
    expect(compute.calls).toBe(0);
  });

  it('takes over when a crashed holder\'s lock expires, and releases the lock it took', async () => {
    const keys = freshKeys();
    await inspect.set(keys.lock, 'crashed-container', 'PX', 300);
    const compute = countedCompute();

    const result = await flight(keys, compute, { waitMs: 3_000 });

    expect(result.outcome).toBe('computed');
    expect(compute.calls).toBe(1);
    expect(await inspect.get(keys.answer)).toBe('{"answer":42}');
    expect(await inspect.exists(keys.lock)).toBe(0);
  });

  it('computes by itself after waiting waitMs for a lock that does not go away, leaving that lock alone', async () => {
    const keys = freshKeys();
    await inspect.set(keys.lock, 'stuck-container', 'PX', 60_000);
    const compute = countedCompute();

    const result = await flight(keys, compute, { waitMs: 400 });

    expect(result.outcome).toBe('computed');
    expect(compute.calls).toBe(1);
    expect(await inspect.get(keys.answer)).toBe('{"answer":42}');
    expect(await inspect.get(keys.lock)).toBe('stuck-container');
  });

  it('never deletes a lock that expired under it and now belongs to someone else', async () => {
    const keys = freshKeys();
    const slow = async (): Promise<Computed> => {
      await sleep(400);
      return { value: '{"answer":"late"}', keep: 'cache' };
    };
    const running = flight(keys, slow, { lockMs: 100 });
    await sleep(200);
    await inspect.set(keys.lock, 'next-holder', 'PX', 10_000);

    await running;

    expect(await inspect.get(keys.lock)).toBe('next-holder');
    expect(await inspect.get(keys.answer)).toBe('{"answer":"late"}');
  });

  it('skips the read when asked for a fresh value, and stores the fresh value', async () => {
    const keys = freshKeys();
    await inspect.set(keys.answer, '{"answer":"old"}');

    const result = await flight(keys, countedCompute('{"answer":"new"}'), { fresh: true });

    expect(result).toEqual({ value: '{"answer":"new"}', outcome: 'fresh' });
    expect(await inspect.get(keys.answer)).toBe('{"answer":"new"}');
  });
});

describe('single-flight when Redis is down', () => {
  afterAll(() => useEnvironment({}));

  it('fails fast with the 503 problem', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1' });
    const compute = countedCompute();
    const started = Date.now();

    const error = await flight(freshKeys(), compute).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(HttpProblem);
    expect((error as HttpProblem).status).toBe(503);
    expect(compute.calls).toBe(0);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('computes uncached when configured to degrade', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1' });
    const compute = countedCompute();

    const result = await flight(freshKeys(), compute, { degradeWhenRedisDown: true });

    expect(result).toEqual({ value: '{"answer":42}', outcome: 'uncached' });
    expect(compute.calls).toBe(1);
  });
});

describe('single-flight on a Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await useEnvironment({});
    await cluster.stop();
  });

  it('locks, stores and serves keys of many questions spread over the nodes', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });
    const questions = Array.from({ length: 12 }, () => freshKeys());

    const computed = await Promise.all(questions.map((keys) => flight(keys, countedCompute('{"answer":"c"}', 20))));
    const served = await Promise.all(questions.map((keys) => flight(keys, countedCompute())));

    expect(computed.every((result) => result.outcome === 'computed')).toBe(true);
    expect(served.every((result) => result.outcome === 'hit' && result.value === '{"answer":"c"}')).toBe(true);
  });
});

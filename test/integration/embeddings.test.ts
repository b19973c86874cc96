// POST /embeddings against a real Redis, standalone and cluster, with the local provider and an
// OpenAI-compatible stand-in: per-input caching, usage, OpenAI error members, upstream and Redis
// failures, and the cache read sent with the rate-limit check.

import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler } from '../../functions/embeddings.ts';
import { handler as usageRoute } from '../../functions/usage.ts';
import { base64ToVector, bytesToVector } from '../../shared/embeddings/float32.ts';
import { LocalEmbedder } from '../../shared/embeddings/local.ts';
import { getRedis } from '../../shared/redis.ts';
import { DOUBLE_MODEL, doubleTokens, doubleTokenVector, doubleVector, startOpenAiEmbeddingsDouble, type OpenAiEmbeddingsDouble } from '../doubles/openai-embeddings.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { commandNames, occurrences, recordWrites } from '../support/socket-writes.ts';
import { httpEvent, invoke, type InvokeResult } from '../support/lambda.ts';
import { startRoundTripProxy, type RoundTripProxy } from '../support/round-trip-proxy.ts';
import { startRedisCluster, type RedisCluster } from '../support/redis.ts';
import { bearer, signUpAndLogIn } from '../support/session.ts';

const LOCAL_MODEL = 'local-hash-384';
const local = new LocalEmbedder(LOCAL_MODEL, 384);
const FAST_AUTH = { PASSWORD_SCRYPT_LOG2N: '14' };

const bits = (vector: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(vector).buffer));
const localBits = (input: string | number[]) => bits(local.embedOne(input));
const vectorBits = (response: InvokeResult) => response.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding));

async function embeddingKeys(admin: Redis): Promise<string[]> {
  return (await admin.keys('tc:{e*')).sort();
}

describe('POST /embeddings with the local provider', () => {
  const redis = useStandaloneRedis();
  let token: string;
  const post = (body: unknown, headers: Record<string, string> = bearer(token)) =>
    invoke(handler, httpEvent('POST', '/embeddings', { body, headers }));

  beforeAll(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH });
    ({ token } = await signUpAndLogIn());
  });
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH });
    for (const key of await embeddingKeys(redis.admin)) await redis.admin.del(key);
  });

  it('answers the OpenAI list shape, one vector per input in input order, as the local embedder computes them', async () => {
    const texts = ['zebra', 'apple pie recipe', 'the derivative of x squared'];

    const response = await post({ input: texts, model: LOCAL_MODEL });

    expect(response.statusCode).toBe(200);
    expect(response.json).toMatchObject({ object: 'list', model: LOCAL_MODEL });
    expect(response.json.data.map((entry: { object: string; index: number }) => [entry.object, entry.index])).toEqual([
      ['embedding', 0],
      ['embedding', 1],
      ['embedding', 2],
    ]);
    expect(response.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding))).toEqual(texts.map(localBits));
  });

  it('accepts a single string and the model left out', async () => {
    const response = await post({ input: 'just one' });

    expect(response.statusCode).toBe(200);
    expect(bits(response.json.data[0].embedding)).toEqual(localBits('just one'));
    expect(response.headers['x-cache-hits']).toBe('0/1');
  });

  it.each(['text-embedding-3-small', 'text-embedding-ada-002'])(
    'accepts the model name %s that OpenAI clients send, and answers with the configured model',
    async (model) => {
      const response = await post({ input: ['any model name'], model });

      expect(response.statusCode).toBe(200);
      expect(response.json.model).toBe(LOCAL_MODEL);
      expect(vectorBits(response)).toEqual([localBits('any model name')]);
    },
  );

  it("keeps each user's cached vectors to that user: another user's identical input is a miss", async () => {
    const other = await signUpAndLogIn();
    await post({ input: ['a private note'] });

    const fromOther = await post({ input: ['a private note'] }, bearer(other.token));
    const again = await post({ input: ['a private note'] });

    expect(fromOther.headers['x-cache-hits']).toBe('0/1');
    expect(again.headers['x-cache-hits']).toBe('1/1');
    expect(vectorBits(fromOther)).toEqual(vectorBits(again));
  });

  it('shares cached vectors between users when EMBEDDINGS_CACHE_SCOPE is global', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, EMBEDDINGS_CACHE_SCOPE: 'global' });
    const other = await signUpAndLogIn();
    await post({ input: ['a shared definition'] });

    const fromOther = await post({ input: ['a shared definition'] }, bearer(other.token));

    expect(fromOther.headers['x-cache-hits']).toBe('1/1');
  });

  it('embeds one array of token ids as one input, as the local embedder computes it', async () => {
    const response = await post({ input: [791, 32013, 315] });

    expect(response.statusCode).toBe(200);
    expect(vectorBits(response)).toEqual([localBits([791, 32013, 315])]);
    expect(response.headers['x-cache-hits']).toBe('0/1');
  });

  it('embeds a batch of token arrays, each repeated array computed once, hits counted per array', async () => {
    const cold = await post({ input: [[1, 2], [3, 4], [1, 2]] });
    const warm = await post({ input: [[3, 4], [5], [1, 2]] });

    expect(cold.headers['x-cache-hits']).toBe('0/3');
    expect(warm.headers['x-cache-hits']).toBe('2/3');
    expect(vectorBits(warm)).toEqual([localBits([3, 4]), localBits([5]), localBits([1, 2])]);
    expect(await embeddingKeys(redis.admin)).toHaveLength(3);
  });

  it('keeps token arrays and text apart in the cache, even when the text spells the ids', async () => {
    await post({ input: ['1,2,3'] });

    const tokens = await post({ input: [[1, 2, 3]] });

    expect(tokens.headers['x-cache-hits']).toBe('0/1');
    expect(vectorBits(tokens)).toEqual([localBits([1, 2, 3])]);
    expect(await embeddingKeys(redis.admin)).toHaveLength(2);
  });

  it('counts the usage of a token array as its number of ids, cached or not', async () => {
    await post({ input: [[1, 2, 3]] });

    const response = await post({ input: [[1, 2, 3], [4, 5], [4, 5]] });

    expect(response.json.usage).toEqual({ prompt_tokens: 3 + 2 + 2, total_tokens: 3 + 2 + 2 });
  });

  it('computes a repeated text once and gives its vector at every position', async () => {
    const response = await post({ input: ['same', 'other', 'same', 'same'] });

    const vectors = response.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding));
    expect(vectors[2]).toEqual(vectors[0]);
    expect(vectors[3]).toEqual(vectors[0]);
    expect(await embeddingKeys(redis.admin)).toHaveLength(2);
    expect(response.headers['x-cache-hits']).toBe('0/4');
  });

  it('counts cache hits per input in X-Cache-Hits', async () => {
    const cold = await post({ input: ['one', 'two', 'three'] });
    const warm = await post({ input: ['three', 'one', 'two'] });
    const mixed = await post({ input: ['one', 'new', 'two', 'new'] });

    expect(cold.headers['x-cache-hits']).toBe('0/3');
    expect(warm.headers['x-cache-hits']).toBe('3/3');
    expect(mixed.headers['x-cache-hits']).toBe('2/4');
  });

  it('computes every input afresh for Cache-Control: no-cache, and stores what it computed', async () => {
    await post({ input: ['refresh me'] });
    const [key] = await embeddingKeys(redis.admin);
    await redis.admin.set(key!, Buffer.alloc(384 * 4), 'KEEPTTL'); // a stale vector the read would serve

    const response = await post({ input: ['refresh me'] }, { ...bearer(token), 'Cache-Control': 'no-cache' });

    expect(response.headers['x-cache-hits']).toBe('0/1');
    expect(vectorBits(response)).toEqual([localBits('refresh me')]);
    expect(bits(bytesToVector((await redis.admin.getBuffer(key!))!)!)).toEqual(localBits('refresh me'));
  });

  it('reads nothing for Pragma: no-cache from a client that sends no Cache-Control, nor for max-age=0', async () => {
    await post({ input: ['pragma'] });

    const pragma = await post({ input: ['pragma'] }, { ...bearer(token), Pragma: 'no-cache' });
    const maxAgeZero = await post({ input: ['pragma'] }, { ...bearer(token), 'Cache-Control': 'max-age=0' });

    expect(pragma.headers['x-cache-hits']).toBe('0/1');
    expect(maxAgeZero.headers['x-cache-hits']).toBe('0/1');
  });

  it('keeps no vector of a request with Cache-Control: no-store, yet serves it what was cached before', async () => {
    await post({ input: ['cached before'] });

    const response = await post({ input: ['private diary', 'cached before'] }, { ...bearer(token), 'Cache-Control': 'no-store' });

    expect(response.statusCode).toBe(200);
    expect(response.headers['x-cache-hits']).toBe('1/2');
    expect(vectorBits(response)).toEqual([localBits('private diary'), localBits('cached before')]);
    expect(await embeddingKeys(redis.admin)).toHaveLength(1);
  });

  it('serves a cached vector bit for bit, as base64 float32 little-endian when asked', async () => {
    await post({ input: ['cache me'] });

    const response = await post({ input: ['cache me'], encoding_format: 'base64' });

    expect(response.headers['x-cache-hits']).toBe('1/1');
    expect(bits(base64ToVector(response.json.data[0].embedding)!)).toEqual(localBits('cache me'));
  });

  it('stores each vector as 4 bytes a dimension, with the stage TTL', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, CACHE_TTL_SECONDS: '600' });

    await post({ input: ['ttl check'] });

    const [key] = await embeddingKeys(redis.admin);
    expect(await redis.admin.strlen(key!)).toBe(384 * 4);
    expect(await redis.admin.pttl(key!)).toBeGreaterThan(590_000);
  });

  it('reports usage as prompt and total tokens, estimated at a quarter of the characters for the local provider', async () => {
    const response = await post({ input: ['abcd', 'abcdefgh', 'abcd'] });

    expect(response.json.usage).toEqual({ prompt_tokens: 1 + 2 + 1, total_tokens: 1 + 2 + 1 });
  });

  it.each([
    ['no input', {}],
    ['an empty string', { input: '' }],
    ['an empty array', { input: [] }],
    ['257 inputs', { input: Array.from({ length: 257 }, (_, i) => `t${i}`) }],
    ['8193 characters', { input: ['x'.repeat(8193)] }],
    ['a number among the texts', { input: ['fine', 3] }],
    ['a model that is not a string', { input: 'x', model: 3 }],
    ['other dimensions', { input: 'x', dimensions: 1536 }],
  ])('refuses %s with a 400 problem and caches nothing', async (_, body) => {
    const response = await post(body);

    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.json.errors.length).toBeGreaterThan(0);
    expect(await embeddingKeys(redis.admin)).toEqual([]);
  });

  it.each([
    ['an empty token array', { input: [[1], []] }, 'input.1'],
    ['8193 token ids', { input: Array.from({ length: 8193 }, (_, i) => i) }, 'input'],
    ['257 token arrays', { input: Array.from({ length: 257 }, (_, i) => [i]) }, 'input'],
    ['a negative token id', { input: [[7, -1]] }, 'input.0.1'],
    ['a fractional token id', { input: [7, 1.5] }, 'input.1'],
    ['a text among token arrays', { input: [[7], 'seven'] }, 'input.1'],
  ])('refuses %s with a 400 problem naming the field at fault, and caches nothing', async (_, body, path) => {
    const response = await post(body);

    expect(response.statusCode).toBe(400);
    expect(response.json.errors.map((error: { path: string }) => error.path)).toEqual([path]);
    expect(await embeddingKeys(redis.admin)).toEqual([]);
  });

  it("adds OpenAI's error member to a 400 problem, keeping the problem's own fields", async () => {
    const response = await post({ input: ['fine', ''] });

    expect(response.json).toMatchObject({
      type: expect.stringMatching(/\/validation$/),
      title: 'Bad Request',
      status: 400,
      detail: 'The request body is not valid.',
      errors: [{ path: 'input.1', message: 'must have at least 1 character' }],
      error: {
        message: 'The request body is not valid. input.1 must have at least 1 character',
        type: 'invalid_request_error',
        param: 'input.1',
        code: 'validation',
      },
    });
  });

  it("adds OpenAI's error member to the 401 of a request without a bearer token", async () => {
    const response = await post({ input: 'x' }, {});

    expect(response.json.error).toMatchObject({ type: 'invalid_request_error', code: 'unauthorized', message: response.json.detail });
  });

  it("refuses a request without a bearer token with a 401, WWW-Authenticate, and its address's rate-limit headers", async () => {
    const response = await post({ input: 'x' }, {});

    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(response.headers['ratelimit-policy']).toBeDefined();
    expect(response.headers['ratelimit']).toMatch(/;r=\d+;t=\d+/);
  });

  it('charges the rate limiter one unit an input', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, RATE_LIMIT_EMBEDDINGS: '10/1h' });
    const { token: fresh } = await signUpAndLogIn();
    const texts = (n: number) => Array.from({ length: n }, (_, i) => `limited ${i}`);

    const first = await post({ input: texts(6) }, bearer(fresh));
    const second = await post({ input: texts(6) }, bearer(fresh));
    const third = await post({ input: texts(4) }, bearer(fresh));

    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"10-per-1h";q=10;w=3600');
    expect(first.headers['ratelimit']).toMatch(/^"10-per-1h";r=4;t=\d+$/);
    expect(second.statusCode).toBe(429);
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
    expect(third.statusCode).toBe(200);
  });

  it("adds OpenAI's error member to the rate limiter's 429", async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, RATE_LIMIT_EMBEDDINGS: '1/1h' });
    const { token: fresh } = await signUpAndLogIn();
    await post({ input: 'first' }, bearer(fresh));

    const refused = await post({ input: 'second' }, bearer(fresh));

    expect(refused.statusCode).toBe(429);
    expect(refused.json.error).toMatchObject({ type: 'invalid_request_error', code: 'rate-limited', message: refused.json.detail });
  });

  it('answers 413 rather than a response over the 6 MB Lambda limit, even in base64 at 8192 dimensions', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, EMBEDDINGS_DIMENSIONS: '8192' });

    const response = await post({ input: Array.from({ length: 256 }, (_, i) => `wide ${i}`), encoding_format: 'base64' });

    expect(response.statusCode).toBe(413);
    expect(response.json.detail).toMatch(/send at most 137 inputs a request\.$/);
  });

  it('answers 503 without waiting for a Redis that is down', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', ...FAST_AUTH });
    const started = Date.now();

    const response = await post({ input: 'x' });

    expect(response.statusCode).toBe(503);
    // Refused connections answer within the Redis time-outs (1.6 s at most); 3 s tells a 503 from a wait.
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("adds OpenAI's server_error member to the 503 of a Redis that is down", async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', ...FAST_AUTH });

    const response = await post({ input: 'x' });

    expect(response.json).toMatchObject({ status: 503, error: { type: 'server_error', code: 'redis-unavailable' } });
  });
});

describe('POST /embeddings with an OpenAI-compatible provider', () => {
  const redis = useStandaloneRedis();
  let upstream: OpenAiEmbeddingsDouble;
  let token: string;
  const DIMENSIONS = 64;
  const env = () => ({ REDIS_URL: redis.server.url, ...FAST_AUTH, ...upstream.env(DIMENSIONS) });
  const post = (body: unknown): Promise<InvokeResult> => invoke(handler, httpEvent('POST', '/embeddings', { body, headers: bearer(token) }));
  const vectorsOf = (response: InvokeResult) => response.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding));

  beforeAll(async () => {
    upstream = await startOpenAiEmbeddingsDouble();
    await useEnvironment(env());
    ({ token } = await signUpAndLogIn());
  });
  beforeEach(async () => {
    await useEnvironment(env());
    upstream.reset();
    for (const key of await embeddingKeys(redis.admin)) await redis.admin.del(key);
  });
  afterAll(() => upstream.close());

  it('sends only the distinct misses upstream, in one call, and answers in input order', async () => {
    await post({ input: ['alpha', 'beta'], model: DOUBLE_MODEL });
    upstream.requests.length = 0;

    const response = await post({ input: ['gamma', 'alpha', 'gamma', 'beta', 'delta'] });

    expect(upstream.requests.map((request) => request.body.input)).toEqual([['gamma', 'delta']]);
    expect(vectorsOf(response)).toEqual(['gamma', 'alpha', 'gamma', 'beta', 'delta'].map((text) => bits(doubleVector(text, DIMENSIONS))));
    expect(response.headers['x-cache-hits']).toBe('2/5');
  });

  it('embeds with the configured model whatever model the client names, and answers with it', async () => {
    const response = await post({ input: ['named otherwise'], model: 'text-embedding-ada-002' });

    expect(upstream.requests.map((request) => request.body.model)).toEqual([DOUBLE_MODEL]);
    expect(response.json.model).toBe(DOUBLE_MODEL);
  });

  it('passes token arrays upstream as they are, only the distinct misses, in one call', async () => {
    await post({ input: [[1, 2]] });
    upstream.requests.length = 0;

    const response = await post({ input: [[3], [1, 2], [3], [4, 5]] });

    expect(upstream.requests.map((request) => request.body.input)).toEqual([[[3], [4, 5]]]);
    expect(vectorsOf(response)).toEqual([[3], [1, 2], [3], [4, 5]].map((ids) => bits(doubleTokenVector(ids, DIMENSIONS))));
    expect(response.headers['x-cache-hits']).toBe('1/4');
  });

  it('makes no upstream call when every input is cached', async () => {
    await post({ input: ['one', 'two'] });

    const response = await post({ input: ['two', 'one', 'two'] });

    expect(upstream.requests).toHaveLength(1);
    expect(response.headers['x-cache-hits']).toBe('3/3');
  });

  it("counts the provider's tokens for the misses and estimates the hits and repeats", async () => {
    await post({ input: ['cached words here'] });

    const response = await post({ input: ['cached words here', 'two new words', 'two new words'] });

    const expected = Math.ceil('cached words here'.length / 4) + doubleTokens('two new words') + Math.ceil('two new words'.length / 4);
    expect(response.json.usage).toEqual({ prompt_tokens: expected, total_tokens: expected });
  });

  it('caches nothing when upstream fails, and asks upstream again next time', async () => {
    upstream.failure = { status: 500 };

    const failed = await post({ input: ['fragile', 'texts'] });
    upstream.failure = undefined;
    const retried = await post({ input: ['fragile', 'texts'] });

    expect(failed.statusCode).toBe(502);
    expect(failed.headers['content-type']).toBe('application/problem+json');
    expect(retried.statusCode).toBe(200);
    expect(retried.headers['x-cache-hits']).toBe('0/2');
    expect(upstream.requests).toHaveLength(2);
  });

  it('passes on an upstream 429 with its Retry-After, and caches nothing', async () => {
    upstream.failure = { status: 429, retryAfter: '12' };

    const response = await post({ input: ['busy'] });

    expect(response.statusCode).toBe(429);
    expect(response.headers['retry-after']).toBe('12');
    expect(await embeddingKeys(redis.admin)).toEqual([]);
  });

  it('answers 503 with Retry-After when upstream says it is unavailable', async () => {
    upstream.failure = { status: 503, retryAfter: '4' };

    const response = await post({ input: ['down'] });

    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('4');
  });

  it('answers 504 once EMBEDDINGS_TIMEOUT_MS has passed, not when a slower upstream answers, and caches nothing', async () => {
    await useEnvironment({ ...env(), EMBEDDINGS_TIMEOUT_MS: '300' });
    upstream.delayMs = 20_000; // a request that waited for upstream would take 20 s
    const started = Date.now();

    const response = await post({ input: ['slow'] });

    expect(response.statusCode).toBe(504);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await embeddingKeys(redis.admin)).toEqual([]);
  });

  it('refuses a batch whose answer could pass the 6 MB limit before it spends a unit or calls the provider, naming what fits', async () => {
    await useEnvironment({ ...env(), ...upstream.env(3072), RATE_LIMIT_EMBEDDINGS: '300/1h' });
    const { token: fresh } = await signUpAndLogIn();
    const postAs = (body: unknown) => invoke(handler, httpEvent('POST', '/embeddings', { body, headers: bearer(fresh) }));
    const batch = Array.from({ length: 256 }, (_, i) => `wide ${i}`);

    const refused = await postAs({ input: batch });
    const providerCallsOfTheRefusal = upstream.requests.length;
    const inBase64 = await postAs({ input: batch, encoding_format: 'base64' });

    expect(refused.statusCode).toBe(413);
    expect(refused.json.detail).toBe(
      'An answer of 256 vectors of 3072 dimensions in float could exceed the 6 MB response limit: send at most 114 inputs a request, or encoding_format "base64" (at most 256).',
    );
    expect(refused.headers['ratelimit']).toBe('"300-per-1h";r=300;t=0');
    expect(providerCallsOfTheRefusal).toBe(0);
    expect(inBase64.statusCode).toBe(200); // 256 more units of 300 would have been a 429
  });

  it('answers 502 for vectors too large to answer with, yet counts what the provider was paid for and keeps them', async () => {
    const dimensions = 3072;
    await useEnvironment({ ...env(), ...upstream.env(dimensions) });
    const { token: fresh } = await signUpAndLogIn();
    const postAs = (body: unknown) => invoke(handler, httpEvent('POST', '/embeddings', { body, headers: bearer(fresh) }));
    const input = Array.from({ length: 114 }, (_, i) => `huge ${i}`); // as many as fit in 6 MB of unit vectors
    const huge = new Array<number>(dimensions).fill(Math.fround(-1.2345679e20));
    upstream.failure = { status: 200, body: JSON.stringify({ data: input.map((_, index) => ({ index, embedding: huge })), usage: { prompt_tokens: 114 } }) };

    const refused = await postAs({ input });
    upstream.failure = undefined;
    const again = await postAs({ input, encoding_format: 'base64' });
    const usage = (await invoke(usageRoute, httpEvent('GET', '/usage', { headers: bearer(fresh) }))).json;

    expect(refused.statusCode).toBe(502);
    expect(again.headers['x-cache-hits']).toBe('114/114');
    expect(usage).toMatchObject({ requests: 2, inputTokens: 114, cacheHits: 114 });
  });

  it('never shows the upstream API key in a response', async () => {
    upstream.failure = { status: 401, body: `{"error":{"message":"Incorrect API key provided: ${upstream.apiKey}"}}` };

    const response = await post({ input: ['x'] });

    expect(response.statusCode).toBe(502);
    expect(response.body).not.toContain(upstream.apiKey);
  });
});

describe('POST /embeddings: the cache read sent with the rate-limit check', () => {
  const redis = useStandaloneRedis();
  let proxy: RoundTripProxy;
  let token: string;
  const post = (body: unknown) => invoke(handler, httpEvent('POST', '/embeddings', { body, headers: bearer(token) }));
  // local-hash-384: a read of more than 42 vectors (64 KiB) waits for the limit's answer.
  const texts = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag} ${i}`);
  const mgetCalls = async () => Number(/cmdstat_mget:calls=(\d+)/.exec(await redis.admin.info('commandstats'))?.[1] ?? 0);
  /** Posts BATCH to fill the cache, then again: the second response and the round trips it cost. */
  const repeatThroughProxy = async (batch: string[]) => {
    await post({ input: batch });
    proxy.reset();
    const repeated = await post({ input: batch });
    return { repeated, roundTrips: proxy.roundTrips() };
  };

  beforeAll(async () => {
    proxy = await startRoundTripProxy(redis.server.port);
  });
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, ...FAST_AUTH, RATE_LIMIT_EMBEDDINGS: '150/1h' });
    ({ token } = await signUpAndLogIn());
  });
  afterAll(() => proxy.close());

  it('waits for two Redis round trips for a cached batch: the session, then the rate limit with the cache read', async () => {
    const { repeated, roundTrips } = await repeatThroughProxy(texts(4, 'cached'));

    expect(repeated.headers['x-cache-hits']).toBe('4/4');
    expect(roundTrips).toBe(2);
  });

  it('sends the cache reads of concurrent cached batches in one write with their rate-limit checks', async () => {
    const batch = texts(4, 'concurrent');
    await post({ input: batch });
    const recorder = recordWrites(((await getRedis()) as Redis).stream);

    const repeats = await Promise.all(Array.from({ length: 4 }, () => post({ input: batch }))).finally(recorder.stop);

    expect(repeats.map((repeat) => repeat.headers['x-cache-hits'])).toEqual(['4/4', '4/4', '4/4', '4/4']);
    // One cache read a request; all but the first, which leaves at once if the connection has
    // nothing in flight then (withRedisSharingWrites), in a write with a rate-limit check.
    const writes = commandNames(recorder.writes);
    expect(occurrences(writes, 'mget')).toBe(4);
    expect(occurrences(writes.filter((commands) => commands.includes('evalsha')), 'mget')).toBeGreaterThanOrEqual(3);
  });

  it('reads a batch too large to send ahead only once the rate limit has admitted it: three round trips', async () => {
    const { repeated, roundTrips } = await repeatThroughProxy(texts(60, 'large'));

    expect(repeated.headers['x-cache-hits']).toBe('60/60');
    expect(roundTrips).toBe(3);
  });

  it('reads no vector for a refused batch too large to send ahead', async () => {
    await post({ input: texts(100, 'spent') });
    const before = await mgetCalls();

    const refused = await post({ input: texts(60, 'refused') });

    expect(refused.statusCode).toBe(429);
    expect(await mgetCalls()).toBe(before);
  });

  it('answers an invalid body with a 400 that carries the rate-limit headers and spends nothing', async () => {
    const response = await post({ input: ['fine', 7] });

    expect(response.statusCode).toBe(400);
    expect(response.headers['ratelimit']).toBe('"150-per-1h";r=150;t=0');
  });

  it('answers malformed JSON with a 400 that carries the rate-limit headers and OpenAI\'s error member, spending nothing', async () => {
    const response = await invoke(
      handler,
      httpEvent('POST', '/embeddings', { body: '{"input": [', headers: { ...bearer(token), 'content-type': 'application/json' } }),
    );

    expect(response.statusCode).toBe(400);
    expect(response.headers['ratelimit']).toBe('"150-per-1h";r=150;t=0');
    expect(response.json.error).toMatchObject({ type: 'invalid_request_error' });
  });

  it('answers a batch larger than a whole window allows with a 413 that no retry would fix, spending nothing', async () => {
    const response = await post({ input: texts(151, 'beyond') });

    expect(response.statusCode).toBe(413);
    expect(response.json).toMatchObject({ type: expect.stringContaining('cost-beyond-rate-limit'), detail: expect.stringContaining('151') });
    expect(response.headers['retry-after']).toBeUndefined();
    expect(response.headers['ratelimit']).toBe('"150-per-1h";r=150;t=0');
  });
});

describe('POST /embeddings on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let token: string;
  const env = () => ({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', ...FAST_AUTH });
  const post = (body: unknown) => invoke(handler, httpEvent('POST', '/embeddings', { body, headers: bearer(token) }));

  beforeAll(async () => {
    cluster = await startRedisCluster();
    await useEnvironment(env());
    ({ token } = await signUpAndLogIn());
  });
  afterAll(async () => {
    await useEnvironment({});
    await cluster.stop();
  });

  it('caches a batch spread over the nodes and serves it back, same vectors, all hits', async () => {
    await useEnvironment(env());
    const texts = Array.from({ length: 50 }, (_, i) => `cluster text ${i}`);

    const cold = await post({ input: texts });
    const warm = await post({ input: [...texts].reverse() });

    expect(cold.headers['x-cache-hits']).toBe('0/50');
    expect(warm.headers['x-cache-hits']).toBe('50/50');
    expect(warm.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding))).toEqual([...texts].reverse().map(localBits));
  });
});

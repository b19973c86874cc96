import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler } from '../../functions/embeddings.ts';
import { base64ToVector } from '../../shared/embeddings/float32.ts';
import { LocalEmbedder } from '../../shared/embeddings/local.ts';
import { DOUBLE_MODEL, doubleTokens, doubleVector, startOpenAiEmbeddingsDouble, type OpenAiEmbeddingsDouble } from '../doubles/openai-embeddings.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke, type InvokeResult } from '../support/lambda.ts';
import { startRedisCluster, startStandaloneRedis, type RedisCluster, type RedisServer } from '../support/redis.ts';
import { bearer, signUpAndLogIn } from '../support/session.ts';

const LOCAL_MODEL = 'local-hash-384';
const local = new LocalEmbedder(LOCAL_MODEL, 384);
const FAST_AUTH = { PASSWORD_SCRYPT_LOG2N: '14' };

const bits = (vector: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(vector).buffer));
const localBits = (text: string) => bits(local.embedOne(text));

async function embeddingKeys(admin: Redis): Promise<string[]> {
  return (await admin.keys('tc:{e:*')).sort();
}

describe('POST /embeddings with the local provider', () => {
  let redis: RedisServer;
  let admin: Redis;
  let token: string;
  const post = (body: unknown, headers: Record<string, string> = bearer(token)) =>
    invoke(handler, httpEvent('POST', '/embeddings', { body, headers }));

  beforeAll(async () => {
    redis = await startStandaloneRedis();
    admin = new Redis({ port: redis.port, host: '127.0.0.1' });
    await useEnvironment({ REDIS_URL: redis.url, ...FAST_AUTH });
    ({ token } = await signUpAndLogIn());
  });
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.url, ...FAST_AUTH });
    for (const key of await embeddingKeys(admin)) await admin.del(key);
  });
  afterAll(async () => {
    await useEnvironment({});
    admin.disconnect();
    await redis.stop();
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

  it('computes a repeated text once and gives its vector at every position', async () => {
    const response = await post({ input: ['same', 'other', 'same', 'same'] });

    const vectors = response.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding));
    expect(vectors[2]).toEqual(vectors[0]);
    expect(vectors[3]).toEqual(vectors[0]);
    expect(await embeddingKeys(admin)).toHaveLength(2);
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

  it('serves a cached vector bit for bit, as base64 float32 little-endian when asked', async () => {
    await post({ input: ['cache me'] });

    const response = await post({ input: ['cache me'], encoding_format: 'base64' });

    expect(response.headers['x-cache-hits']).toBe('1/1');
    expect(bits(base64ToVector(response.json.data[0].embedding)!)).toEqual(localBits('cache me'));
  });

  it('stores each vector as 4 bytes a dimension, with the stage TTL', async () => {
    await useEnvironment({ REDIS_URL: redis.url, ...FAST_AUTH, CACHE_TTL_SECONDS: '600' });

    await post({ input: ['ttl check'] });

    const [key] = await embeddingKeys(admin);
    expect(await admin.strlen(key!)).toBe(384 * 4);
    expect(await admin.pttl(key!)).toBeGreaterThan(590_000);
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
    ['token arrays', { input: [[101, 102]] }],
    ['another model', { input: 'x', model: 'text-embedding-3-large' }],
    ['other dimensions', { input: 'x', dimensions: 1536 }],
  ])('refuses %s with a 400 problem and caches nothing', async (_, body) => {
    const response = await post(body);

    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.json.errors.length).toBeGreaterThan(0);
    expect(await embeddingKeys(admin)).toEqual([]);
  });

  it('refuses a request without a bearer token with a 401 and WWW-Authenticate', async () => {
    const response = await post({ input: 'x' }, {});

    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('charges the rate limiter one unit an input', async () => {
    await useEnvironment({ REDIS_URL: redis.url, ...FAST_AUTH, RATE_LIMIT_EMBEDDINGS: '10/1h' });
    const { token: fresh } = await signUpAndLogIn();
    const texts = (n: number) => Array.from({ length: n }, (_, i) => `limited ${i}`);

    const first = await post({ input: texts(6) }, bearer(fresh));
    const second = await post({ input: texts(6) }, bearer(fresh));
    const third = await post({ input: texts(4) }, bearer(fresh));

    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBeDefined();
    expect(second.statusCode).toBe(429);
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
    expect(third.statusCode).toBe(200);
  });

  it('answers 413 rather than a response over the 6 MB Lambda limit', async () => {
    await useEnvironment({ REDIS_URL: redis.url, ...FAST_AUTH, EMBEDDINGS_DIMENSIONS: '8192' });

    const response = await post({ input: Array.from({ length: 256 }, (_, i) => `wide ${i}`), encoding_format: 'base64' });

    expect(response.statusCode).toBe(413);
    expect(response.json.detail).toMatch(/fewer inputs/);
  });

  it('answers 503 within about a second when Redis is down', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', ...FAST_AUTH });
    const started = Date.now();

    const response = await post({ input: 'x' });

    expect(response.statusCode).toBe(503);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('POST /embeddings with an OpenAI-compatible provider', () => {
  let redis: RedisServer;
  let admin: Redis;
  let upstream: OpenAiEmbeddingsDouble;
  let token: string;
  const DIMENSIONS = 64;
  const env = () => ({ REDIS_URL: redis.url, ...FAST_AUTH, ...upstream.env(DIMENSIONS) });
  const post = (body: unknown): Promise<InvokeResult> => invoke(handler, httpEvent('POST', '/embeddings', { body, headers: bearer(token) }));
  const vectorsOf = (response: InvokeResult) => response.json.data.map((entry: { embedding: number[] }) => bits(entry.embedding));

  beforeAll(async () => {
    redis = await startStandaloneRedis();
    admin = new Redis({ port: redis.port, host: '127.0.0.1' });
    upstream = await startOpenAiEmbeddingsDouble();
    await useEnvironment(env());
    ({ token } = await signUpAndLogIn());
  });
  beforeEach(async () => {
    await useEnvironment(env());
    upstream.reset();
    for (const key of await embeddingKeys(admin)) await admin.del(key);
  });
  afterAll(async () => {
    await useEnvironment({});
    admin.disconnect();
    await upstream.close();
    await redis.stop();
  });

  it('sends only the distinct misses upstream, in one call, and answers in input order', async () => {
    await post({ input: ['alpha', 'beta'], model: DOUBLE_MODEL });
    upstream.requests.length = 0;

    const response = await post({ input: ['gamma', 'alpha', 'gamma', 'beta', 'delta'] });

    expect(upstream.requests.map((request) => request.body.input)).toEqual([['gamma', 'delta']]);
    expect(vectorsOf(response)).toEqual(['gamma', 'alpha', 'gamma', 'beta', 'delta'].map((text) => bits(doubleVector(text, DIMENSIONS))));
    expect(response.headers['x-cache-hits']).toBe('2/5');
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
    expect(await embeddingKeys(admin)).toEqual([]);
  });

  it('answers 503 with Retry-After when upstream says it is unavailable', async () => {
    upstream.failure = { status: 503, retryAfter: '4' };

    const response = await post({ input: ['down'] });

    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('4');
  });

  it('answers 504 within about a second when upstream is slower than EMBEDDINGS_TIMEOUT_MS, and caches nothing', async () => {
    await useEnvironment({ ...env(), EMBEDDINGS_TIMEOUT_MS: '300' });
    upstream.delayMs = 3000;
    const started = Date.now();

    const response = await post({ input: ['slow'] });

    expect(response.statusCode).toBe(504);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await embeddingKeys(admin)).toEqual([]);
  });

  it('never shows the upstream API key in a response', async () => {
    upstream.failure = { status: 401, body: `{"error":{"message":"Incorrect API key provided: ${upstream.apiKey}"}}` };

    const response = await post({ input: ['x'] });

    expect(response.statusCode).toBe(502);
    expect(response.body).not.toContain(upstream.apiKey);
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

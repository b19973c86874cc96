// The official `openai` client against `npm run dev` (serverless-offline), with a session token
// from the real login route as its API key: what a tutor's retrieval code does.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEmbedder } from '../../shared/embeddings/local.ts';
import { signUpOverHttp, startDevServer, type DevServer } from '../support/dev-server.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';

const MODEL = 'local-hash-384';
const local = new LocalEmbedder(MODEL, 384);

describe('POST /embeddings on npm run dev, through the official openai client', () => {
  const redis = useStandaloneRedis();
  let dev: DevServer;
  let client: OpenAI;
  beforeAll(async () => {
    dev = await startDevServer({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', EMBEDDINGS_PROVIDER: 'local' });
    client = new OpenAI({ baseURL: dev.baseUrl, apiKey: await signUpOverHttp(dev.baseUrl), maxRetries: 0 });
  }, 90_000);
  afterAll(() => dev?.stop());

  it('gets the local provider’s vectors exactly, then the same vectors from the cache', async () => {
    const texts = ['What is a fraction?', 'Explain photosynthesis'];

    const first = await client.embeddings.create({ input: texts, model: MODEL }).withResponse();
    const second = await client.embeddings.create({ input: texts, model: MODEL }).withResponse();

    const expected = texts.map((text) => Array.from(local.embedOne(text)));
    expect(first.data.data.map((entry) => entry.embedding)).toEqual(expected);
    expect(first.response.headers.get('x-cache-hits')).toBe('0/2');
    expect(second.data.data.map((entry) => entry.embedding)).toEqual(expected);
    expect(second.response.headers.get('x-cache-hits')).toBe('2/2');
    expect(second.response.headers.get('ratelimit-policy')).not.toBeNull();
  });

  it('works with the model name OpenAI SDK users send, and answers with the configured model', async () => {
    const result = await client.embeddings.create({ input: 'What is a fraction?', model: 'text-embedding-3-small' });

    expect(result.model).toBe(MODEL);
    expect(result.data[0]!.embedding).toEqual(Array.from(local.embedOne('What is a fraction?')));
  });

  it('raises BadRequestError whose message carries our detail, not "(no body)"', async () => {
    const error = await client.embeddings.create({ input: '', model: MODEL }).catch((reason: unknown) => reason);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toBe('400 The request body is not valid. input must have at least 1 character');
  });
});

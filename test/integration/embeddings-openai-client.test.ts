// The official `openai` npm client, pointed at POST /embeddings with a session token as its API
// key, through a small HTTP server that turns each request into an API Gateway event for the
// handler (what serverless-offline and API Gateway do).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text as bodyText } from 'node:stream/consumers';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler } from '../../functions/embeddings.ts';
import { handler as notFound } from '../../functions/not-found.ts';
import { LocalEmbedder } from '../../shared/embeddings/local.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { signUpAndLogIn } from '../support/session.ts';

const MODEL = 'local-hash-384';
const local = new LocalEmbedder(MODEL, 384);


/** HTTP in, handler invoked with the API Gateway event, HTTP out: POST /embeddings, else the catch-all. */
async function startGateway(): Promise<{ baseUrl: string; server: Server }> {
  const server = createServer(async (request, response) => {
    const body = await bodyText(request);
    const url = new URL(request.url ?? '/', 'http://localhost');
    const route = request.method === 'POST' && url.pathname === '/embeddings' ? handler : notFound;
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
    const result = await invoke(route, httpEvent(request.method ?? 'GET', url.pathname, { headers, body }));
    response.writeHead(result.statusCode, result.headers).end(result.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('the official openai client against POST /embeddings', () => {
  const redis = useStandaloneRedis();
  let gateway: { baseUrl: string; server: Server };
  let client: OpenAI;

  beforeAll(async () => {
    gateway = await startGateway();
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14' });
    const { token } = await signUpAndLogIn();
    client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: token, maxRetries: 0 });
  });
  afterAll(async () => {
    gateway.server.closeAllConnections();
    await new Promise((resolve) => gateway.server.close(resolve));
  });

  it('gets, exactly, the vectors the local provider computes (the client asks for base64 and decodes it)', async () => {
    const texts = ['What is a prime number?', 'Explain photosynthesis', 'What is a prime number?'];

    const result = await client.embeddings.create({ input: texts, model: MODEL });

    expect(result.object).toBe('list');
    expect(result.model).toBe(MODEL);
    expect(result.data.map((entry) => entry.index)).toEqual([0, 1, 2]);
    expect(result.data.map((entry) => entry.embedding)).toEqual(texts.map((text) => Array.from(local.embedOne(text))));
    expect(result.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('gets the same vectors within float32 precision with encoding_format float, from the cache', async () => {
    const texts = ['cached before', 'a text not seen before'];
    await client.embeddings.create({ input: texts[0]!, model: MODEL });

    const response = await client.embeddings.create({ input: texts, model: MODEL, encoding_format: 'float' }).withResponse();

    expect(response.response.headers.get('x-cache-hits')).toBe('1/2');
    const vectors = response.data.data.map((entry) => entry.embedding.map(Math.fround));
    expect(vectors).toEqual(texts.map((text) => Array.from(local.embedOne(text))));
  });

  it('accepts a single string input', async () => {
    const result = await client.embeddings.create({ input: 'one string', model: MODEL });

    expect(result.data).toHaveLength(1);
    expect(result.data[0]!.embedding).toEqual(Array.from(local.embedOne('one string')));
  });

  it('works with the model name OpenAI SDK users send, and answers with the configured model', async () => {
    const result = await client.embeddings.create({ input: ['an SDK default'], model: 'text-embedding-3-small' });

    expect(result.model).toBe(MODEL);
    expect(result.data[0]!.embedding).toEqual(Array.from(local.embedOne('an SDK default')));
  });

  it('embeds token arrays, as LangChain Python sends them by default', async () => {
    const arrays = [[791, 32013, 315], [53363, 30]];

    const result = await client.embeddings.create({ input: arrays, model: 'text-embedding-ada-002' });

    expect(result.data.map((entry) => entry.embedding)).toEqual(arrays.map((ids) => Array.from(local.embedOne(ids))));
  });

  it('raises BadRequestError whose message, param and code carry what was wrong', async () => {
    const error = await client.embeddings.create({ input: ['fine', ''], model: MODEL }).catch((reason: unknown) => reason);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({
      message: '400 The request body is not valid. input.1 must have at least 1 character',
      param: 'input.1',
      code: 'validation',
    });
  });

  it('raises AuthenticationError for an API key that is not a session token', async () => {
    const stranger = new OpenAI({ baseURL: gateway.baseUrl, apiKey: 'not-a-session-token', maxRetries: 0 });

    await expect(stranger.embeddings.create({ input: 'x', model: MODEL })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('shows our detail, not "(no body)", in the AuthenticationError message', async () => {
    const stranger = new OpenAI({ baseURL: gateway.baseUrl, apiKey: 'not-a-session-token', maxRetries: 0 });

    const error = await stranger.embeddings.create({ input: 'x', model: MODEL }).catch((reason: unknown) => reason);

    expect((error as Error).message).toBe('401 The bearer token is malformed, expired or revoked; log in again.');
  });

  it('tells a client whose base URL ends in /v1 which route it asked for and the base URL to use, in the NotFoundError message', async () => {
    const misdirected = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: 'any', maxRetries: 0 });

    const error = await misdirected.embeddings.create({ input: 'x', model: MODEL }).catch((reason: unknown) => reason);

    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as Error).message).toBe("404 No route for POST /v1/embeddings: the base URL is the API's root, without /v1 (/embeddings).");
  });
});

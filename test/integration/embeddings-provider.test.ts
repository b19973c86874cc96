// The OpenAI-compatible embeddings provider against a local stand-in for the OpenAI API: what it
// sends, vectors in input order, upstream errors mapped to 429/502/503/504 with their Retry-After,
// time-outs, and an API key that never reaches logs or problems.

import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { embeddingsProvider } from '../../shared/embeddings/configured-provider.ts';
import { OpenAiEmbeddings } from '../../shared/embeddings/openai.ts';
import { HttpProblem } from '../../shared/problem.ts';
import { estimateTokens } from '../../shared/tokens-estimate.ts';
import {
  DOUBLE_MODEL,
  doubleTokens,
  doubleTokenVector,
  doubleVector,
  MAX_TOKENS_PER_REQUEST,
  startOpenAiEmbeddingsDouble,
  type OpenAiEmbeddingsDouble,
} from '../doubles/openai-embeddings.ts';
import { useEnvironment } from '../support/env.ts';
import { captureOutput } from '../support/logs.ts';
import { problemOf } from '../support/problems.ts';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An answer for 'one' and 'two' in base64, 32 dimensions, whose second vector starts with `values`. */
function base64AnswerWith(values: number[]): string {
  const second = new Float32Array(32).fill(0.125);
  second.set(values);
  const data = [new Float32Array(32).fill(0.125), second].map((vector, index) => ({ index, embedding: Buffer.from(vector.buffer).toString('base64') }));
  return JSON.stringify({ data, usage: { prompt_tokens: 2 } });
}

/** An answer for 'one' and 'two' as number arrays, 32 dimensions, whose second vector starts with `values`. */
function numberAnswerWith(values: number[]): string {
  const second = [...values, ...new Array<number>(32 - values.length).fill(0.125)];
  return JSON.stringify({ data: [new Array<number>(32).fill(0.125), second].map((embedding, index) => ({ index, embedding })), usage: { prompt_tokens: 2 } });
}

describe('the OpenAI-compatible embeddings provider', () => {
  let upstream: OpenAiEmbeddingsDouble;
  const provider = (overrides: Partial<ConstructorParameters<typeof OpenAiEmbeddings>[0]> = {}) =>
    new OpenAiEmbeddings({ baseUrl: upstream.baseUrl, apiKey: upstream.apiKey, model: DOUBLE_MODEL, dimensions: 32, timeoutMs: 2000, ...overrides });

  beforeAll(async () => {
    upstream = await startOpenAiEmbeddingsDouble();
  });
  beforeEach(() => upstream.reset());
  afterAll(async () => {
    await useEnvironment({});
    await upstream.close();
  });

  it('sends every text in one request, with the model, the dimensions, base64 encoding and the bearer key', async () => {
    const texts = Array.from({ length: 256 }, (_, i) => `text ${i}`);

    await provider().embed(texts);

    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]).toEqual({
      authorization: `Bearer ${upstream.apiKey}`,
      body: { input: texts, model: DOUBLE_MODEL, encoding_format: 'base64', dimensions: 32 },
    });
  });

  it('gives the upstream vectors in the order of the texts, whatever order they came in, with the upstream token count', async () => {
    const texts = ['first text', 'second', 'a third text here'];

    const result = await provider().embed(texts);

    expect(result.vectors.map((vector) => Array.from(vector))).toEqual(texts.map((text) => Array.from(doubleVector(text, 32))));
    expect(result.promptTokens).toBe(texts.reduce((sum, text) => sum + doubleTokens(text), 0));
  });

  it.each([-7, 2.5, 1e300, '12'])('estimates the token count when upstream reports %s, which is no count', async (reported) => {
    const answer = JSON.parse(base64AnswerWith([])) as { usage: { prompt_tokens: unknown } };
    answer.usage.prompt_tokens = reported;
    upstream.failure = { status: 200, body: JSON.stringify(answer) };
    const texts = ['one text here', 'two'];

    const result = await provider().embed(texts);

    expect(result.promptTokens).toBe(estimateTokens(texts[0]!) + estimateTokens(texts[1]!));
  });

  it('sends token arrays upstream unchanged, in one request', async () => {
    const arrays = [[791, 32013, 315], [0], [Number.MAX_SAFE_INTEGER, 7]];

    await provider().embed(arrays);

    expect(upstream.requests.map((request) => request.body.input)).toEqual([arrays]);
  });

  it('gives the upstream vectors of token arrays in their order, with the upstream token count', async () => {
    const arrays = [[791, 32013, 315], [42]];

    const result = await provider().embed(arrays);

    expect(result.vectors.map((vector) => Array.from(vector))).toEqual(arrays.map((ids) => Array.from(doubleTokenVector(ids, 32))));
    expect(result.promptTokens).toBe(3 + 1);
  });

  it('splits texts of more tokens than OpenAI takes in one request into requests under its 300,000, answering in the order of the texts', async () => {
    const texts = Array.from({ length: 256 }, (_, i) => `${i} ${'w '.repeat(4096)}`.slice(0, 8192));

    const result = await provider().embed(texts);

    expect(upstream.requests.length).toBeGreaterThan(1);
    for (const { body } of upstream.requests) {
      expect((body.input as string[]).reduce((sum, text) => sum + doubleTokens(text), 0)).toBeLessThanOrEqual(MAX_TOKENS_PER_REQUEST);
    }
    expect(result.vectors.map((vector) => Array.from(vector))).toEqual(texts.map((text) => Array.from(doubleVector(text, 32))));
    expect(result.promptTokens).toBe(texts.reduce((sum, text) => sum + doubleTokens(text), 0));
  });

  it('splits 256 token arrays of 8,192 ids into requests under OpenAI\'s 300,000 tokens, answering in their order', async () => {
    const arrays = Array.from({ length: 256 }, (_, i) => Array.from({ length: 8192 }, (_, id) => i + id));

    const result = await provider().embed(arrays);

    for (const { body } of upstream.requests) expect((body.input as number[][]).flat().length).toBeLessThanOrEqual(MAX_TOKENS_PER_REQUEST);
    expect(result.vectors.map((vector) => Array.from(vector))).toEqual(arrays.map((ids) => Array.from(doubleTokenVector(ids, 32))));
    expect(result.promptTokens).toBe(256 * 8192);
  });

  it('reads number arrays as well as base64, for servers that ignore encoding_format', async () => {
    upstream.ignoreEncodingFormat = true;

    const result = await provider().embed(['floats please']);

    expect(Array.from(result.vectors[0]!)).toEqual(Array.from(doubleVector('floats please', 32)));
  });

  it('passes on a 429 with the upstream Retry-After', async () => {
    upstream.failure = { status: 429, retryAfter: '7' };

    const problem = await problemOf(provider().embed(['x']));

    expect(problem.status).toBe(429);
    expect(problem.headers['Retry-After']).toBe('7');
  });

  it("reads OpenAI's retry-after-ms, rounded up to whole seconds", async () => {
    upstream.failure = { status: 429, retryAfterMs: '2500' };

    const problem = await problemOf(provider().embed(['x']));

    expect(problem.headers['Retry-After']).toBe('3');
  });

  it('passes on a 503 with Retry-After (1 s when upstream gave none)', async () => {
    upstream.failure = { status: 503 };

    const problem = await problemOf(provider().embed(['x']));

    expect(problem.status).toBe(503);
    expect(problem.headers['Retry-After']).toBe('1');
  });

  it('answers 422 naming the fault when an input within 8,192 characters is more tokens than the model reads', async () => {
    const emoji = '🦜'.repeat(8192);

    const problem = await problemOf(provider().embed(['short', emoji]));

    expect(problem.status).toBe(422);
    expect(problem.type).toMatch(/embeddings-input-too-long$/);
    expect(problem.detail).toMatch(/shorten/);
  });

  it("answers 422 too for OpenAI's newer wording of an input longer than the model reads", async () => {
    const error = { message: "Invalid 'input': maximum context length is 8192 tokens.", type: 'invalid_request_error', param: null, code: null };
    upstream.failure = { status: 400, body: JSON.stringify({ error }) };

    const problem = await problemOf(provider().embed(['x']));

    expect(problem.status).toBe(422);
  });

  it.each([500, 502, 400, 401, 404])('answers 502 when upstream answers %i', async (status) => {
    upstream.failure = { status };

    const problem = await problemOf(provider().embed(['x']));

    expect(problem.status).toBe(502);
  });

  it('answers 502 when nothing listens at the base URL', async () => {
    const problem = await problemOf(provider({ baseUrl: `http://127.0.0.1:${await closedPort()}/v1` }).embed(['x']));

    expect(problem.status).toBe(502);
  });

  it('answers 504 within its time-out when upstream is slow', async () => {
    upstream.delayMs = 5000;
    const started = Date.now();

    const problem = await problemOf(provider({ timeoutMs: 200 }).embed(['x']));

    expect(problem.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("answers 504 when the caller's own deadline passes first", async () => {
    upstream.delayMs = 5000;

    const problem = await problemOf(provider({ timeoutMs: 10_000 }).embed(['x'], { signal: AbortSignal.timeout(100) }));

    expect(problem.status).toBe(504);
  });

  it.each([
    ['vectors of another size', () => (upstream.forceDimensions = 16)],
    ['a body that is not JSON', () => (upstream.failure = { status: 200, body: '<html>gateway</html>' })],
    ['fewer vectors than texts', () => (upstream.failure = { status: 200, body: JSON.stringify({ data: [{ index: 0, embedding: [1] }] }) })],
    ['a base64 vector holding NaN or Infinity', () => (upstream.failure = { status: 200, body: base64AnswerWith([Number.NaN, Number.POSITIVE_INFINITY]) })],
    ['a number beyond the range of float32', () => (upstream.failure = { status: 200, body: numberAnswerWith([1e39]) })],
  ])('answers 502 for %s', async (_, arrange) => {
    arrange();

    const problem = await problemOf(provider().embed(['one', 'two']));

    expect(problem.status).toBe(502);
  });

  it('never writes the API key to logs or problems, even when upstream echoes it', async () => {
    await useEnvironment({ ...upstream.env(32), LOG_LEVEL: 'debug' });
    upstream.failure = { status: 401, body: JSON.stringify({ error: { message: `Incorrect API key provided: ${upstream.apiKey}` } }) };
    const output = captureOutput();
    let problem: HttpProblem;
    try {
      problem = await problemOf(embeddingsProvider().embed(['x']));
    } finally {
      output.restore();
    }

    expect(output.text()).toContain('embeddings provider refused');
    expect(output.text()).not.toContain(upstream.apiKey);
    expect(JSON.stringify(problem.toResponse())).not.toContain(upstream.apiKey);
  });
});

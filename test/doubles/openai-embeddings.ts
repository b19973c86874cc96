// A local server speaking the OpenAI embeddings wire format (POST <base>/embeddings), so the real
// remote provider runs against it through EMBEDDINGS_BASE_URL. Its vectors are deterministic and
// unlike the local provider's (unit vectors seeded by the text's SHA-256), so a test can tell
// which side computed a vector. Like OpenAI it takes texts or token arrays, not a mix of both, and
// refuses an input of more than 8,192 tokens and a request of more than 300,000 in all. It counts
// calls and inputs, and can fail or answer slowly.

import { createHash } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text as bodyText } from 'node:stream/consumers';

export interface Failure {
  status: number;
  /** Sent as `Retry-After` (seconds or an HTTP date). */
  retryAfter?: string;
  /** Sent as OpenAI's `retry-after-ms`. */
  retryAfterMs?: string;
  /** A body other than OpenAI's error object. */
  body?: string;
}

export interface ReceivedRequest {
  authorization: string | undefined;
  body: { input?: unknown; model?: unknown; encoding_format?: unknown; dimensions?: unknown };
}

export interface OpenAiEmbeddingsDouble {
  /** What EMBEDDINGS_BASE_URL should be (ends in /v1, like OpenAI's). */
  baseUrl: string;
  apiKey: string;
  /** Environment that points the remote provider at this double. */
  env(dimensions?: number): Record<string, string>;
  /** Requests received, in order. */
  requests: ReceivedRequest[];
  /** Total inputs (texts or token arrays) received over all requests. */
  inputs(): number;
  /** While set, every request is answered with this failure. */
  failure: Failure | undefined;
  /** Milliseconds to wait before answering. */
  delayMs: number;
  /** Answer with vectors of this size instead of the requested `dimensions`. */
  forceDimensions: number | undefined;
  /** Answer number arrays even when base64 was asked for (as some compatible servers do). */
  ignoreEncodingFormat: boolean;
  reset(): void;
  close(): Promise<void>;
}

export const DOUBLE_MODEL = 'text-embedding-3-small';

/** The vector the double returns for `text`: a deterministic unit vector. */
export function doubleVector(text: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions);
  let seed = createHash('sha256').update(text).digest();
  for (let i = 0; i < dimensions; i += 1) {
    if (i % 8 === 0 && i > 0) seed = createHash('sha256').update(seed).digest();
    vector[i] = seed.readInt32LE((i % 8) * 4) / 2 ** 31;
  }
  const norm = Math.hypot(...vector);
  return vector.map((value) => value / norm);
}

/**
 * Tokens the double reports for a text: its words, plus one, plus one for each character beyond
 * ASCII (a real tokenizer spends one or more on an emoji or an ideograph, so a text of 8,192 of
 * them is past the model's 8,192 tokens); for a token array, its length.
 */
export function doubleTokens(input: string | number[]): number {
  if (typeof input !== 'string') return input.length;
  return input.split(/\s+/).filter(Boolean).length + 1 + (input.match(/[^\u0000-\u007f]/gu)?.length ?? 0);
}

/** The vector the double returns for a token array: unlike any text's, however the ids are spelt. */
export function doubleTokenVector(ids: number[], dimensions: number): Float32Array {
  return doubleVector(`tokens\u0000${ids.join(' ')}`, dimensions);
}

const isTokenArray = (input: unknown): input is number[] =>
  Array.isArray(input) && input.length > 0 && input.every((id) => Number.isSafeInteger(id) && id >= 0);


function sendJson(response: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  response.end(JSON.stringify(payload));
}

function openAiError(response: ServerResponse, status: number, message: string, headers: Record<string, string> = {}, code: string | null = null): void {
  sendJson(response, status, { error: { message, type: code ?? 'invalid_request_error', param: null, code } }, headers);
}

/** OpenAI's cap on the tokens of all the inputs of one request, whatever their number. */
export const MAX_TOKENS_PER_REQUEST = 300_000;
/** The most tokens one input may hold (OpenAI's embedding models read 8,192). */
export const MAX_TOKENS_PER_INPUT = 8192;

export async function startOpenAiEmbeddingsDouble(apiKey = 'sk-test-double-0123456789abcdef'): Promise<OpenAiEmbeddingsDouble> {
  const double = {
    requests: [] as ReceivedRequest[],
    failure: undefined,
    delayMs: 0,
    forceDimensions: undefined,
    ignoreEncodingFormat: false,
  } as OpenAiEmbeddingsDouble;

  const server = createServer(async (request, response) => {
    const text = await bodyText(request);
    if (request.method !== 'POST' || !request.url?.endsWith('/embeddings')) return openAiError(response, 404, 'not found');
    let body: ReceivedRequest['body'];
    try {
      body = JSON.parse(text) as ReceivedRequest['body'];
    } catch {
      return openAiError(response, 400, 'invalid JSON');
    }
    double.requests.push({ authorization: request.headers.authorization, body });
    if (double.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, double.delayMs));
    if (response.destroyed) return;
    const failure = double.failure;
    if (failure) {
      const headers: Record<string, string> = {};
      if (failure.retryAfter !== undefined) headers['Retry-After'] = failure.retryAfter;
      if (failure.retryAfterMs !== undefined) headers['retry-after-ms'] = failure.retryAfterMs;
      if (failure.body !== undefined) {
        response.writeHead(failure.status, headers);
        return response.end(failure.body);
      }
      return openAiError(response, failure.status, `simulated failure ${failure.status}`, headers);
    }
    if (request.headers.authorization !== `Bearer ${apiKey}`) {
      return openAiError(response, 401, 'Incorrect API key provided.');
    }
    const inputs = body.input;
    if (!Array.isArray(inputs) || !(inputs.every((input) => typeof input === 'string') || inputs.every(isTokenArray))) {
      return openAiError(response, 400, 'input must be an array of strings or an array of token arrays');
    }
    const dimensions = double.forceDimensions ?? (typeof body.dimensions === 'number' ? body.dimensions : 1536);
    const base64 = body.encoding_format === 'base64' && !double.ignoreEncodingFormat;
    const longest = Math.max(...inputs.map((input) => doubleTokens(input)));
    if (longest > MAX_TOKENS_PER_INPUT) {
      const message = `This model's maximum context length is ${MAX_TOKENS_PER_INPUT} tokens, however you requested ${longest} tokens (${longest} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`;
      return openAiError(response, 400, message);
    }
    const tokens = inputs.reduce((sum, input) => sum + doubleTokens(input), 0);
    if (tokens > MAX_TOKENS_PER_REQUEST) {
      return openAiError(response, 400, `Requested ${tokens} tokens, max ${MAX_TOKENS_PER_REQUEST} tokens per request`, {}, 'max_tokens_per_request');
    }
    sendJson(response, 200, {
      object: 'list',
      model: body.model,
      // Reversed, with explicit indexes: a client must order by index, not by position.
      data: inputs
        .map((input, index) => {
          const vector = typeof input === 'string' ? doubleVector(input, dimensions) : doubleTokenVector(input, dimensions);
          return {
            object: 'embedding',
            index,
            embedding: base64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector),
          };
        })
        .reverse(),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}/v1`;

  return Object.assign(double, {
    baseUrl,
    apiKey,
    env: (dimensions = 64) => ({
      EMBEDDINGS_PROVIDER: 'openai',
      EMBEDDINGS_BASE_URL: baseUrl,
      EMBEDDINGS_API_KEY: apiKey,
      EMBEDDINGS_MODEL: DOUBLE_MODEL,
      EMBEDDINGS_DIMENSIONS: String(dimensions),
    }),
    inputs: () => double.requests.reduce((sum, received) => sum + (Array.isArray(received.body.input) ? received.body.input.length : 0), 0),
    reset: () => {
      double.requests.length = 0;
      double.failure = undefined;
      double.delayMs = 0;
      double.forceDimensions = undefined;
      double.ignoreEncodingFormat = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

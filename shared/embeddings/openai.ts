// The remote provider: any server speaking the OpenAI embeddings wire format (OpenAI, Azure-style
// proxies, vLLM, LiteLLM, Voyage's compatible endpoint...). One POST for all the misses of a
// request (the route takes at most 256 inputs, OpenAI up to 2,048 a request), unless they may hold
// more than the 300,000 tokens OpenAI takes in one request: then several, side by side. Texts or
// token sequences are passed on as they came, with a hard time-out, and upstream failures turned
// into problems a client can act on:
//
//   upstream 429            -> 429, Retry-After passed on (default 1 s)
//   upstream 503            -> 503, Retry-After passed on (default 1 s)
//   upstream 400, an input
//   past the model's tokens -> 422 (the client can shorten it)
//   other 5xx, other 4xx,
//   unreachable, bad answer -> 502 (the client did nothing wrong; our key or upstream is at fault)
//   no answer in time       -> 504
//
// Upstream error bodies are logged (scrubbed, shortened), never returned: they can name our key.

import { log, scrubbedExcerpt } from '../logger.ts';
import { HttpProblem } from '../problem.ts';
import { retryAfterMs } from '../retry-after.ts';
import { estimateTokens, reportedTokens } from '../tokens-estimate.ts';
import { base64ToVector } from './float32.ts';
import type { EmbeddingInput, EmbedOptions, EmbedResult, EmbeddingsProvider } from './provider.ts';

export interface OpenAiEmbeddingsOptions {
  /** e.g. `https://api.openai.com/v1`; `/embeddings` is appended. */
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  dimensions: number;
  timeoutMs: number;
}

const MAX_LOGGED_BODY = 300;
/**
 * OpenAI refuses a request whose inputs hold more than this many tokens in all (400
 * max_tokens_per_request); 256 inputs of 8,192 characters or ids, which the route accepts, can
 * hold about two million.
 */
const MAX_TOKENS_PER_CALL = 300_000;

interface WireEmbedding {
  index?: unknown;
  embedding?: unknown;
}

interface WireResponse {
  data?: unknown;
  usage?: { prompt_tokens?: unknown };
}

export class OpenAiEmbeddings implements EmbeddingsProvider {
  readonly model: string;
  readonly dimensions: number;
  readonly cacheNamespace: string;
  readonly #options: OpenAiEmbeddingsOptions;
  readonly #url: string;

  constructor(options: OpenAiEmbeddingsOptions) {
    this.model = options.model;
    this.dimensions = options.dimensions;
    this.cacheNamespace = `${options.model}:${options.dimensions}`;
    this.#options = options;
    this.#url = `${options.baseUrl.replace(/\/+$/, '')}/embeddings`;
  }

  async embed(inputs: readonly EmbeddingInput[], options: EmbedOptions = {}): Promise<EmbedResult> {
    const results = await Promise.all(batchesUnderTokenCap(inputs).map((batch) => this.#embedInOneCall(batch, options.signal)));
    if (results.length === 1) return results[0]!;
    return {
      vectors: results.flatMap((result) => result.vectors),
      promptTokens: results.reduce((sum, result) => sum + result.promptTokens, 0),
    };
  }

  async #embedInOneCall(inputs: readonly EmbeddingInput[], callerSignal: AbortSignal | undefined): Promise<EmbedResult> {
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    const signal = callerSignal ? AbortSignal.any([timeout, callerSignal]) : timeout;
    let status: number;
    let text: string;
    let headers: Headers;
    try {
      const response = await fetch(this.#url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          ...(this.#options.apiKey ? { Authorization: `Bearer ${this.#options.apiKey}` } : {}),
        },
        // base64: exact float32 bytes, a quarter of the JSON size, and supported by every server that
        // the official SDKs work with (they ask for base64 by default).
        body: JSON.stringify({ input: inputs, model: this.model, encoding_format: 'base64', dimensions: this.dimensions }),
        signal,
      });
      status = response.status;
      headers = response.headers;
      text = await response.text();
    } catch (error) {
      throw this.#transportProblem(error, signal);
    }
    if (status < 200 || status > 299) throw this.#statusProblem(status, headers, text);
    return this.#parse(text, inputs);
  }

  #transportProblem(error: unknown, signal: AbortSignal): HttpProblem {
    if (signal.aborted) {
      log.warn('embeddings provider timed out', { timeoutMs: this.#options.timeoutMs });
      return new HttpProblem(504, 'embeddings-timeout', {
        detail: 'The embeddings provider did not answer in time; try again.',
        cause: error,
      });
    }
    log.warn('embeddings provider unreachable', { err: error });
    return new HttpProblem(502, 'embeddings-unreachable', {
      detail: 'The embeddings provider could not be reached.',
      cause: error,
    });
  }

  #statusProblem(status: number, headers: Headers, body: string): HttpProblem {
    log.warn('embeddings provider refused', { upstreamStatus: status, upstreamBody: scrubbedExcerpt(body, MAX_LOGGED_BODY) });
    const retryAfterSeconds = (retryAfterMs(headers) ?? 1000) / 1000;
    if (status === 429) {
      return new HttpProblem(429, 'embeddings-rate-limited', {
        detail: 'The embeddings provider is rate limiting us; retry after the time given.',
        retryAfterSeconds,
      });
    }
    if (status === 503) {
      return new HttpProblem(503, 'embeddings-unavailable', {
        detail: 'The embeddings provider is unavailable; try again shortly.',
        retryAfterSeconds,
      });
    }
    // An input of at most 8,192 characters can still be more tokens than the model reads (emoji,
    // ideographs): the client's to fix, by shortening it, not a fault of ours or of upstream.
    // OpenAI says "This model's maximum context length is 8192 tokens, however you requested …"
    // or "Invalid 'input': maximum context length is 8192 tokens."
    if (status === 400 && /maximum context length/i.test(body)) {
      return new HttpProblem(422, 'embeddings-input-too-long', {
        detail: 'An input is more tokens than the embeddings model reads; shorten it or split it.',
      });
    }
    return new HttpProblem(502, 'embeddings-upstream-error', {
      detail: `The embeddings provider answered with status ${status}.`,
    });
  }

  #parse(text: string, inputs: readonly EmbeddingInput[]): EmbedResult {
    const invalid = (why: string) => {
      log.warn('embeddings provider sent an unusable answer', { why, upstreamBody: scrubbedExcerpt(text, MAX_LOGGED_BODY) });
      return new HttpProblem(502, 'embeddings-upstream-error', { detail: 'The embeddings provider sent an unusable answer.' });
    };
    let body: WireResponse;
    try {
      body = JSON.parse(text) as WireResponse;
    } catch {
      throw invalid('not JSON');
    }
    if (!Array.isArray(body?.data) || body.data.length !== inputs.length) throw invalid('data is not one entry per input');
    const vectors = new Array<Float32Array | undefined>(inputs.length);
    (body.data as WireEmbedding[]).forEach((entry, position) => {
      const index = typeof entry?.index === 'number' ? entry.index : position;
      const vector = toVector(entry?.embedding);
      if (vector === undefined) throw invalid('an embedding is neither finite numbers nor base64 of finite float32');
      if (vector.length !== this.dimensions) {
        throw invalid(`an embedding has ${vector.length} dimensions, EMBEDDINGS_DIMENSIONS is ${this.dimensions}`);
      }
      if (!Number.isInteger(index) || index < 0 || index >= inputs.length || vectors[index] !== undefined) {
        throw invalid('indexes are not 0..n-1');
      }
      vectors[index] = vector;
    });
    return {
      vectors: vectors as Float32Array[],
      promptTokens: reportedTokens(body.usage?.prompt_tokens) ?? inputs.reduce((sum, input) => sum + estimateTokens(input), 0),
    };
  }
}

/**
 * The most tokens an input can be: a token sequence's length; a text's UTF-8 bytes, since a token
 * of a byte-level tokenizer (OpenAI's) holds at least one byte. Characters would not do: one
 * emoji or rare ideograph can be several tokens.
 */
function mostTokens(input: EmbeddingInput): number {
  return typeof input === 'string' ? Buffer.byteLength(input) : input.length;
}

/** The inputs in order, cut into consecutive batches that can hold at most MAX_TOKENS_PER_CALL tokens each. */
function batchesUnderTokenCap(inputs: readonly EmbeddingInput[]): Array<readonly EmbeddingInput[]> {
  const batches: Array<readonly EmbeddingInput[]> = [];
  let start = 0;
  let tokens = 0;
  inputs.forEach((input, position) => {
    const most = mostTokens(input);
    if (position > start && tokens + most > MAX_TOKENS_PER_CALL) {
      batches.push(inputs.slice(start, position));
      start = position;
      tokens = 0;
    }
    tokens += most;
  });
  batches.push(inputs.slice(start));
  return batches;
}

function toVector(embedding: unknown): Float32Array | undefined {
  let vector: Float32Array | undefined;
  if (typeof embedding === 'string') vector = base64ToVector(embedding);
  else if (Array.isArray(embedding) && embedding.every((value) => typeof value === 'number')) vector = Float32Array.from(embedding as number[]);
  // Checked as float32: bytes can spell NaN or an infinity, and a number past float32's range
  // (1e39) becomes one. Cached, it would be served as null in every `float` answer for the TTL.
  return vector?.every(Number.isFinite) ? vector : undefined;
}

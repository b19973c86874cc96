// What the endpoint needs from an embeddings provider. Providers know nothing of Redis: the
// cache sits in front of them.

/**
 * One input: a text, or a sequence of token ids (OpenAI's wire format for pre-tokenised input).
 * The ids belong to whatever tokenizer the client used; nothing here decodes them.
 */
export type EmbeddingInput = string | readonly number[];

export interface EmbedOptions {
  /** Give up (and reject) when this signal aborts: the request's time budget is spent. */
  signal?: AbortSignal;
}

export interface EmbedResult {
  /** One vector of `dimensions` floats per input, in the order of the inputs. */
  vectors: Float32Array[];
  /** Tokens the provider counted (or estimated, for providers that do not count). */
  promptTokens: number;
}

export interface EmbeddingsProvider {
  /** The model every request is embedded with, whatever the client named; responses name it. */
  readonly model: string;
  readonly dimensions: number;
  /**
   * The cache key's namespace: whatever would give the same input a different vector (model,
   * dimensions, algorithm version) must be part of it.
   */
  readonly cacheNamespace: string;
  /**
   * All inputs in one call (one upstream request for remote providers, or a few when the inputs
   * exceed what the upstream takes in one). The inputs of one call are all texts or all token
   * sequences: OpenAI refuses a mix, and so does the request's validation.
   */
  embed(inputs: readonly EmbeddingInput[], options?: EmbedOptions): Promise<EmbedResult>;
}

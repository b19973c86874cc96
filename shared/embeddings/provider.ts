// What the endpoint needs from an embeddings provider. Providers know nothing of Redis: the
// cache sits in front of them.

export interface EmbedOptions {
  /** Give up (and reject) when this signal aborts: the request's time budget is spent. */
  signal?: AbortSignal;
}

export interface EmbedResult {
  /** One vector of `dimensions` floats per text, in the order of the texts. */
  vectors: Float32Array[];
  /** Tokens the provider counted (or estimated, for providers that do not count). */
  promptTokens: number;
}

export interface EmbeddingsProvider {
  /** The model name clients send and see in responses. */
  readonly model: string;
  readonly dimensions: number;
  /**
   * The cache key's namespace: whatever would give the same text a different vector (model,
   * dimensions, algorithm version) must be part of it.
   */
  readonly cacheNamespace: string;
  /** All texts in one call (one upstream request for remote providers). */
  embed(texts: string[], options?: EmbedOptions): Promise<EmbedResult>;
}

/** Tokens for text no tokenizer has seen: about 4 characters a token for English (OpenAI's rule of thumb). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

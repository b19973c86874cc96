// Token counts where no tokenizer has counted them, so that usage still reads like a real
// provider's: the offline stand-ins (local embeddings, the local tutor), inputs answered from the
// cache, and an OpenAI reply that left its count out.

/**
 * Tokens of an input: a token sequence's length, or about 4 characters a token for text (OpenAI's
 * rule of thumb for English).
 */
export function estimateTokens(input: string | readonly number[]): number {
  return typeof input === 'string' ? Math.ceil(input.length / 4) : input.length;
}

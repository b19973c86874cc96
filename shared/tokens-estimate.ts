// Token counts where no tokenizer has counted them, so that usage still reads like a real
// provider's: the offline stand-ins (local embeddings, the local tutor), inputs answered from the
// cache, and a provider's reply that left its count out or sent one that is not a count.

/**
 * Tokens of an input: a token sequence's length, or about 4 characters a token for text (OpenAI's
 * rule of thumb for English).
 */
export function estimateTokens(input: string | readonly number[]): number {
  return typeof input === 'string' ? Math.ceil(input.length / 4) : input.length;
}

/** Tokens a model reads for a conversation: its system prompt and every message; Claude never counts fewer than one. */
export function estimateConversationTokens(system: string, messages: readonly { content: string }[]): number {
  return Math.max(1, estimateTokens(system + messages.map((message) => message.content).join('')));
}

/** Far above any model's context: a provider's count past it is not a count of one call. */
const MOST_TOKENS_A_CALL = 100_000_000;

/**
 * A token count as a provider reported it, when it is one: a whole number from 0 up. Anything
 * else (negative, fractional, 1e300) is undefined, for the caller's estimate: passed on, it would
 * reach clients and the cache, and the usage counters would refuse the whole request.
 */
export function reportedTokens(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MOST_TOKENS_A_CALL ? (value as number) : undefined;
}

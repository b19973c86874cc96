// POST /chat: a tutoring conversation answered by Claude (or the offline tutor), with the answer
// cached in Redis per user (or globally) and identical concurrent misses sent to Claude once.
//
//   httpBasics → authenticate → cache prefetch (validate, start the GET) → rate limit → cached handler
//
// The system prompt is the server's: a body carrying `system` is refused with a 400. Unknown
// fields are refused too, so a typo never silently changes what is asked.

import middy from '@middy/core';
import * as z from 'zod/mini';
import { authenticate, type AuthenticatedEvent } from '#shared/auth/middleware.ts';
import { responseCache } from '#shared/cache/response-cache.ts';
import { config, perConfiguration, type ChatProviderName } from '#shared/config.ts';
import { httpBasics, withRequestLogging, type HttpEvent, type HttpResult } from '#shared/http.ts';
import { chatProvider, type ChatTurn, type Completion } from '#shared/llm/provider.ts';
import { systemPrompt } from '#shared/llm/system-prompt.ts';
import { rateLimit } from '#shared/rate-limit/middleware.ts';
import { countCacheRequests, recordTokenUsage, type CacheOutcome } from '#shared/telemetry/metrics.ts';
import { countUsageInBackground } from '#shared/usage/counters.ts';
import { atMostCharacters, validate } from '#shared/validation.ts';

const MAX_MESSAGES = 50;
const MAX_CONTENT_CHARS = 32_000;
const MAX_TOKENS_LIMIT = 4096;
const DEFAULT_MAX_TOKENS = 1024;
const DEFAULT_TEMPERATURE = 0.7;

/** Everything the answer depends on; its digest (with the owner) is the cache key. */
export interface ChatQuestion {
  provider: ChatProviderName;
  model: string;
  systemPromptVersion: string;
  messages: ChatTurn[];
  maxTokens: number;
  temperature: number;
}

/** The contract's answer: these fields of the provider's completion, and no others it may grow. */
export type ChatAnswer = Pick<Completion, 'id' | 'model' | 'content' | 'stopReason' | 'usage'>;

/** Complete answers are kept; refusals, paused turns and empty answers are not. */
const CACHEABLE_STOP_REASONS = new Set(['end_turn', 'max_tokens', 'stop_sequence']);

function chatBodySchema(models: [string, ...string[]]) {
  const message = z.strictObject({
    role: z.enum(['user', 'assistant']),
    content: z.string().check(
      z.minLength(1),
      z.refine(...atMostCharacters(MAX_CONTENT_CHARS)),
      // Claude refuses a text of whitespace alone: a 400 here, not a 502 from upstream.
      // (An empty text has its own error, from minLength.)
      z.refine((content) => content === '' || content.trim() !== '', { message: 'must contain more than whitespace' }),
    ),
  });
  return z.strictObject({
    messages: z.array(message).check(
      z.minLength(1),
      z.maxLength(MAX_MESSAGES),
      // (An empty conversation has its own error, from minLength.)
      z.refine((messages) => messages.length === 0 || messages.at(-1)?.role === 'user', { message: 'must end with a message from the user' }),
    ),
    model: z.optional(z.enum(models)),
    maxTokens: z.optional(z.int().check(z.gte(1), z.lte(MAX_TOKENS_LIMIT))),
    temperature: z.optional(z.number().check(z.gte(0), z.lte(1))),
    // The tutor's system prompt belongs to the server; naming the field gives a precise error.
    system: z.optional(z.never()),
  });
}

const bodySchema = perConfiguration(({ chat }) => chatBodySchema(chat.models as [string, ...string[]]));

/** The validated request with every default filled in, so `{}` and explicit defaults share a key. */
export function chatQuestion(event: HttpEvent): ChatQuestion {
  const body = validate(bodySchema(), event.jsonBody);
  const { provider, defaultModel } = config().chat;
  return {
    provider,
    model: body.model ?? defaultModel,
    systemPromptVersion: systemPrompt().version,
    messages: body.messages.map(({ role, content }) => ({ role, content })),
    maxTokens: body.maxTokens ?? DEFAULT_MAX_TOKENS,
    temperature: body.temperature ?? DEFAULT_TEMPERATURE,
  };
}

async function askTutor(question: ChatQuestion, budget: { deadline: number }): Promise<ChatAnswer> {
  const completion = await chatProvider().complete(
    {
      model: question.model,
      system: systemPrompt().text,
      messages: question.messages,
      maxTokens: question.maxTokens,
      temperature: question.temperature,
    },
    budget,
  );
  recordTokenUsage({ operation: 'chat', provider: question.provider, model: question.model, ...completion.usage });
  // Field by field: what is cached and served is exactly the contract's answer, whatever else a provider's object holds.
  return {
    id: completion.id,
    model: completion.model,
    content: completion.content,
    stopReason: completion.stopReason,
    usage: completion.usage,
  };
}

/**
 * The one place where an answered request's usage is known, fresh (a miss, a bypass) or from the
 * cache (a hit, where `answer.usage` is what the answer cost when it was made). Usage counters for
 * GET /usage are written from here.
 */
function countUsage(event: AuthenticatedEvent, answer: ChatAnswer, outcome: CacheOutcome): void {
  // A hit (stored, or shared by a concurrent identical request) cost this user no Claude tokens.
  const spent = outcome === 'hit' ? { cacheHits: 1 } : { inputTokens: answer.usage.inputTokens, outputTokens: answer.usage.outputTokens };
  countUsageInBackground({ userId: event.user.id, route: 'POST /chat', requests: 1, ...spent });
  countCacheRequests('chat', outcome);
}

const chatCache = responseCache<AuthenticatedEvent, ChatQuestion, ChatAnswer>({
  name: 'chat',
  question: chatQuestion,
  owner: (event) => event.user.id,
  scope: () => config().chat.cacheScope,
  ttlSeconds: () => config().cacheTtlSeconds,
  computeBudgetMs: () => config().chat.timeoutMs,
  degradeWhenRedisDown: () => config().chat.degradeWhenRedisDown,
  isCacheable: (answer) => CACHEABLE_STOP_REASONS.has(answer.stopReason) && answer.content !== '',
  present: (answer, outcome) => ({ ...answer, cached: outcome === 'hit' }),
  onServed: countUsage,
});

/** The route without auth and rate limit: the cached, single-flight answer for `event.user`. */
export const answerChat = chatCache.handler(askTutor);

export const handler = withRequestLogging(
  'POST /chat',
  middy<AuthenticatedEvent, HttpResult>()
    .use(httpBasics({ deferBodyProblems: true }))
    .use(authenticate())
    .use(chatCache.prefetch())
    .use(
      rateLimit({
        bucket: 'chat',
        limit: () => config().rateLimits.chat,
        // An invalid question spends nothing; its 400 comes from the handler.
        cost: (event) => {
          chatCache.validate(event as AuthenticatedEvent);
          return 1;
        },
      }),
    )
    .handler(answerChat),
);

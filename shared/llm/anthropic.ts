// Claude through the Anthropic Messages API, as a thin client on the runtime's fetch (the
// official SDK would add about 1 MB to a bundle that must stay small for cold starts).
//
// Budget: every call has a deadline (retries included). At most one retry, only for what is
// worth retrying at once (529 overloaded, 5xx, a dropped connection), and only when Claude's
// Retry-After is short and the retry still fits before the deadline.
//
// What the client sees when Claude fails (nothing of it is cached):
//   Claude 429                   → 429 upstream-rate-limited   Retry-After: Claude's, else 5 (a 429 always says when)
//   Claude 529 (overloaded)      → 503 upstream-overloaded     Retry-After: Claude's, else 5
//   Claude 503 (unavailable)     → 503 upstream-unavailable    Retry-After: Claude's, else 5
//   Claude other 5xx, bad reply, network → 502 upstream-error  Retry-After: Claude's, if any
//   no answer before the deadline → 502 upstream-timeout       Retry-After: 5
//   "prompt is too long" (400)   → 422 conversation-too-long   (the client can shorten it)
//   "exceed context limit" (400) → 422 conversation-too-long   (or ask for fewer maxTokens)
//   any other 4xx (key, model)   → 502 upstream-rejected       (logged as an error for the operator)
// A time-out is a 502, as the contract has it for a failing Claude: its 503 and 429 are for what
// Claude itself said. Retry-After still tells clients the one thing they can do: try again shortly.
//
// The API key goes only into the x-api-key header; it is registered with the logger's scrubber,
// and problems carry fixed texts, never Claude's error text.

import { registerSecret } from '../logger.ts';
import { HttpProblem } from '../problem.ts';
import { retryAfterMs } from '../retry-after.ts';
import { estimateConversationTokens, estimateTokens, reportedTokens } from '../tokens-estimate.ts';
import type { ChatProvider, Completion, CompletionOptions, CompletionRequest } from './provider.ts';

export const ANTHROPIC_VERSION = '2023-06-01';

/** A retry waits at most this long for Claude's Retry-After; longer waits are passed on to the client. */
const MAX_RETRY_WAIT_MS = 2_000;
/** A retry is pointless unless the new attempt has at least this long before the deadline. */
const MIN_ATTEMPT_MS = 1_000;
const DEFAULT_RETRY_WAIT_MS = 300;
const DEFAULT_RETRY_AFTER_SECONDS = 5;

export interface AnthropicOptions {
  apiKey: string;
  /** e.g. https://api.anthropic.com (no trailing slash). */
  baseUrl: string;
}

interface MessagesReply {
  id?: unknown;
  model?: unknown;
  content?: unknown;
  stop_reason?: unknown;
  usage?: {
    input_tokens?: unknown;
    output_tokens?: unknown;
    cache_creation_input_tokens?: unknown;
    cache_read_input_tokens?: unknown;
  };
}

/** What one attempt ended with, before it is turned into an answer, a retry or a problem. */
type Attempt =
  | { kind: 'answer'; completion: Completion }
  | {
      kind: 'status';
      status: number;
      retryAfterMs: number | undefined;
      shouldRetry: boolean | undefined;
      /** Claude's `request-id`, which Anthropic's support asks for; kept in the cause (logged), never answered. */
      requestId: string | null;
      errorType: string;
      message: string;
    }
  | { kind: 'network'; cause: unknown }
  | { kind: 'timeout' };

export function anthropicProvider(options: AnthropicOptions): ChatProvider {
  registerSecret(options.apiKey);
  const url = `${options.baseUrl}/v1/messages`;
  const headers = {
    'x-api-key': options.apiKey,
    'anthropic-version': ANTHROPIC_VERSION,
    'content-type': 'application/json',
    accept: 'application/json',
  };

  async function attempt(body: string, deadline: number, request: CompletionRequest): Promise<Attempt> {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return { kind: 'timeout' };
    try {
      // The signal covers the body as well as the headers: a reply that stalls half way times out too.
      const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(remaining) });
      if (response.ok) return { kind: 'answer', completion: toCompletion((await response.json()) as MessagesReply, request) };
      const error = await readError(response);
      return {
        kind: 'status',
        status: response.status,
        retryAfterMs: retryAfterMs(response.headers),
        shouldRetry: shouldRetryHeader(response.headers),
        requestId: response.headers.get('request-id'),
        ...error,
      };
    } catch (error) {
      if (isTimeout(error)) return { kind: 'timeout' };
      if (error instanceof HttpProblem) throw error;
      return { kind: 'network', cause: error };
    }
  }

  async function complete(request: CompletionRequest, { deadline }: CompletionOptions): Promise<Completion> {
    const body = JSON.stringify(messagesBody(request));
    let outcome = await attempt(body, deadline, request);
    const wait = retryWaitMs(outcome);
    if (wait !== undefined && Date.now() + wait + MIN_ATTEMPT_MS <= deadline) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      outcome = await attempt(body, deadline, request);
    }
    if (outcome.kind === 'answer') return outcome.completion;
    throw toProblem(outcome);
  }

  return { name: 'anthropic', complete };
}

function messagesBody(request: CompletionRequest): Record<string, unknown> {
  return {
    model: request.model,
    max_tokens: request.maxTokens,
    temperature: request.temperature,
    // One cache breakpoint after the system prompt: Claude bills its tokens at the cache-read
    // rate on every later call that starts with the same prompt.
    system: [{ type: 'text', text: request.system, cache_control: { type: 'ephemeral' } }],
    messages: request.messages.map(({ role, content }) => ({ role, content })),
  };
}

/** The reply to `request` as a completion; counts Claude sent as no counts are estimated. */
function toCompletion(reply: MessagesReply, request: CompletionRequest): Completion {
  const blocks = Array.isArray(reply.content) ? (reply.content as Array<{ type?: unknown; text?: unknown }>) : undefined;
  if (typeof reply.id !== 'string' || blocks === undefined || typeof reply.stop_reason !== 'string') {
    throw new HttpProblem(502, 'upstream-error', {
      detail: 'Claude sent a reply this service does not understand.',
      cause: new Error('anthropic: malformed Messages reply'),
    });
  }
  const usage = reply.usage ?? {};
  const content = blocks.map((block) => (block.type === 'text' && typeof block.text === 'string' ? block.text : '')).join('');
  return {
    id: reply.id,
    model: typeof reply.model === 'string' ? reply.model : 'unknown',
    content,
    stopReason: reply.stop_reason,
    usage: {
      // Every input token the model read, whether billed fresh or from Claude's prompt cache (a
      // cache part left out is none); without a count of the fresh ones, the estimate of the whole.
      inputTokens:
        (reportedTokens(usage.input_tokens) ?? estimateConversationTokens(request.system, request.messages)) +
        (reportedTokens(usage.cache_creation_input_tokens) ?? 0) +
        (reportedTokens(usage.cache_read_input_tokens) ?? 0),
      outputTokens: reportedTokens(usage.output_tokens) ?? estimateTokens(content),
    },
  };
}

async function readError(response: Response): Promise<{ errorType: string; message: string }> {
  try {
    const parsed = (await response.json()) as { error?: { type?: unknown; message?: unknown } };
    return {
      errorType: typeof parsed.error?.type === 'string' ? parsed.error.type : 'unknown',
      message: typeof parsed.error?.message === 'string' ? parsed.error.message : '',
    };
  } catch {
    return { errorType: 'unknown', message: '' };
  }
}

function shouldRetryHeader(headers: Headers): boolean | undefined {
  const value = headers.get('x-should-retry');
  return value === 'true' ? true : value === 'false' ? false : undefined;
}

/** How long to wait before the one retry, or undefined when this outcome is not retried. */
function retryWaitMs(outcome: Attempt): number | undefined {
  if (outcome.kind === 'network') return DEFAULT_RETRY_WAIT_MS;
  if (outcome.kind !== 'status' || outcome.shouldRetry === false) return undefined;
  const retryable = outcome.status >= 500; // 529 (overloaded) included
  if (!retryable) return undefined;
  const wait = outcome.retryAfterMs ?? DEFAULT_RETRY_WAIT_MS;
  return wait <= MAX_RETRY_WAIT_MS ? wait : undefined;
}

function isTimeout(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

function seconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.max(1, Math.ceil(ms / 1000));
}

function toProblem(outcome: Exclude<Attempt, { kind: 'answer' }>): HttpProblem {
  if (outcome.kind === 'timeout') {
    return new HttpProblem(502, 'upstream-timeout', {
      detail: 'Claude did not answer in time; try again shortly.',
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SECONDS,
      cause: new Error('anthropic: no answer before the deadline'),
    });
  }
  if (outcome.kind === 'network') {
    return new HttpProblem(502, 'upstream-error', {
      // response.json() throws a SyntaxError for a reply that is not JSON; anything else is the connection.
      detail: outcome.cause instanceof SyntaxError ? 'Claude sent an answer that could not be read.' : 'Claude could not be reached.',
      cause: outcome.cause,
    });
  }
  const { status, errorType, message, requestId } = outcome;
  const retryAfterSeconds = seconds(outcome.retryAfterMs);
  const requestIdNote = requestId === null ? '' : ` (request ${requestId})`;
  const cause = new Error(`anthropic ${status} ${errorType}${requestIdNote}: ${message}`);
  if (status === 429) {
    return new HttpProblem(429, 'upstream-rate-limited', {
      detail: 'Claude is rate limiting this service; try again later.',
      retryAfterSeconds: retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
      cause,
    });
  }
  if (status === 529) {
    return new HttpProblem(503, 'upstream-overloaded', {
      detail: 'Claude is overloaded; try again shortly.',
      retryAfterSeconds: retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
      cause,
    });
  }
  if (status === 503) {
    return new HttpProblem(503, 'upstream-unavailable', {
      detail: 'Claude is unavailable; try again shortly.',
      retryAfterSeconds: retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
      cause,
    });
  }
  if (status >= 500) {
    return new HttpProblem(502, 'upstream-error', {
      detail: 'Claude failed to answer.',
      ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
      cause,
    });
  }
  if (status === 400 && /prompt is too long|too many tokens|context (window|length)/i.test(message)) {
    return new HttpProblem(422, 'conversation-too-long', {
      detail: "The conversation is longer than the model can read; shorten it or start a new one.",
      cause,
    });
  }
  // Models that do not stop at their context window refuse a conversation that fits only without
  // room for maxTokens more ("input length and `max_tokens` exceed context limit: 199759 + 4096 >
  // 200000"): the client's to fix too, by a smaller maxTokens as well as a shorter conversation.
  if (status === 400 && /exceed context limit/i.test(message)) {
    return new HttpProblem(422, 'conversation-too-long', {
      detail: 'The conversation and the maxTokens of the answer exceed what the model can hold; ask for fewer maxTokens, shorten the conversation or start a new one.',
      cause,
    });
  }
  return new HttpProblem(502, 'upstream-rejected', {
    detail: 'Claude rejected the request this service sent.',
    cause,
  });
}

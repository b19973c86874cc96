// The one small interface every chat model sits behind (Claude, the offline tutor), and the
// choice between them from configuration. Handlers speak only this interface.

import { perConfiguration, type ChatProviderName } from '../config.ts';
import { anthropicProvider } from './anthropic.ts';
import { localTutor } from './local.ts';

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  model: string;
  /** The server's system prompt; clients never supply it. */
  system: string;
  messages: ChatTurn[];
  maxTokens: number;
  temperature: number;
}

export interface Completion {
  id: string;
  /** The model that answered, as the provider reports it. */
  model: string;
  content: string;
  /** `end_turn`, `max_tokens`, `stop_sequence`, `refusal`, ... as the Messages API names them. */
  stopReason: string;
  usage: { inputTokens: number; outputTokens: number };
}

export interface CompletionOptions {
  /** Epoch milliseconds by which the answer must be in, retries included. */
  deadline: number;
}

export interface ChatProvider {
  readonly name: ChatProviderName;
  complete(request: CompletionRequest, options: CompletionOptions): Promise<Completion>;
}

/** The configured provider, created once per configuration (the API key is registered as a secret then). */
export const chatProvider = perConfiguration(({ chat }): ChatProvider =>
  chat.provider === 'anthropic' ? anthropicProvider({ apiKey: chat.anthropicApiKey, baseUrl: chat.anthropicBaseUrl }) : localTutor(),
);

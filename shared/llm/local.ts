// The offline tutor: a deterministic stand-in for Claude for development without an API key.
// It is not a language model and says so at the start of every answer; its `model` is
// `local-tutor`, whatever model the request named. Same question, same answer, so the response
// cache and its tests behave as they do with Claude; and, as with Claude, every answer made has an
// id of its own (a cached answer keeps the id it was made with).

import { randomBytes } from 'node:crypto';
import { digest } from '../keys.ts';
import { estimateConversationTokens, estimateTokens } from '../tokens-estimate.ts';
import type { ChatProvider, Completion, CompletionRequest } from './provider.ts';

const LOCAL_TUTOR_MODEL = 'local-tutor';
export const LOCAL_TUTOR_LABEL = '[local tutor — offline, not Claude]';

const NUDGES = [
  'What do you already know that could help here? Write down the first step you would try.',
  'Can you say in your own words what the question is asking for, and what you are given?',
  'Try a smaller or simpler version of the problem first. What happens there?',
  'Which part feels unclear: the idea itself, or how to start? Tell me where you got stuck.',
  'What would a good answer look like? Describe it before working it out, then check your work against it.',
];

/**
 * At most the first `length` UTF-16 units of `text`, one fewer rather than split a surrogate pair
 * (an emoji): the answer must stay valid text.
 */
function prefix(text: string, length: number): string {
  if (text.length <= length) return text;
  const last = text.charCodeAt(length - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? length - 1 : length);
}

function quote(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 160 ? `${prefix(oneLine, 157)}...` : oneLine;
}

export function localTutor(): ChatProvider {
  return {
    name: 'local',
    async complete(request: CompletionRequest): Promise<Completion> {
      const question = request.messages.at(-1)?.content ?? '';
      const fingerprint = digest(JSON.stringify([request.system, request.messages]));
      const nudge = NUDGES[Number.parseInt(fingerprint.slice(0, 8), 16) % NUDGES.length];
      const full =
        `${LOCAL_TUTOR_LABEL} You asked: "${quote(question)}". ` +
        `Let's work it out together rather than me handing you the answer. ${nudge}`;
      // max_tokens behaves as with Claude: the answer is cut and the stop reason says so.
      const content = prefix(full, request.maxTokens * 4);
      return {
        id: `local_${randomBytes(12).toString('hex')}`,
        model: LOCAL_TUTOR_MODEL,
        content,
        stopReason: content.length < full.length ? 'max_tokens' : 'end_turn',
        // Claude never reports fewer than one token for a turn; nor does its stand-in.
        usage: { inputTokens: estimateConversationTokens(request.system, request.messages), outputTokens: Math.max(1, estimateTokens(content)) },
      };
    },
  };
}

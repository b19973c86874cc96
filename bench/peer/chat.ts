// Peer chat handler: full Anthropic SDK, full zod, rate-limiter-flexible, JSON cache in Redis.

import Anthropic from '@anthropic-ai/sdk';
import { createHash } from 'node:crypto';
import { peerHandler, peerLimiter, peerRedis, unwrapSecretUrl, z } from './common.ts';

const anthropic = new Anthropic({ apiKey: process.env['ANTHROPIC_API_KEY'] ?? 'unset', baseURL: process.env['ANTHROPIC_BASE_URL'] });

const ChatBody = z.object({
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.string().min(1).max(32000) })).min(1).max(50),
  model: z.string().default('claude-sonnet-4-5'),
  maxTokens: z.number().int().min(1).max(4096).default(1024),
  temperature: z.number().min(0).max(1).optional(),
});

export const handler = peerHandler(async (event, context) => {
  const redis = peerRedis(unwrapSecretUrl(context.REDIS_URL));
  const token = (event.headers['authorization'] ?? '').replace(/^Bearer /, '');
  const session = await redis.get(`peer:session:${token}`);
  if (!session) return { statusCode: 401, body: '{"message":"unauthorized"}' };
  const user = JSON.parse(session) as { id: string };
  await peerLimiter(redis, 1_000_000).consume(user.id);
  const body = ChatBody.parse(event.body);
  const cacheKey = `peer:chat:${user.id}:${createHash('sha256').update(JSON.stringify(body)).digest('hex')}`;
  const cached = await redis.get(cacheKey);
  if (cached) return { statusCode: 200, headers: { 'X-Cache': 'HIT' }, body: cached };
  const message = await anthropic.messages.create({
    model: body.model,
    max_tokens: body.maxTokens,
    system: 'You are a patient tutor.',
    messages: body.messages,
  });
  const answer = JSON.stringify({
    id: message.id,
    model: message.model,
    content: message.content.map((block) => (block.type === 'text' ? block.text : '')).join(''),
    stopReason: message.stop_reason,
    usage: { inputTokens: message.usage.input_tokens, outputTokens: message.usage.output_tokens },
  });
  await redis.set(cacheKey, answer, 'EX', 3600);
  return { statusCode: 200, headers: { 'X-Cache': 'MISS' }, body: answer };
});

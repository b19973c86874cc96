// Peer embeddings handler: the full OpenAI SDK for the provider, JSON vectors in Redis, one GET per input.

import OpenAI from 'openai';
import { createHash } from 'node:crypto';
import { peerHandler, peerLimiter, peerRedis, unwrapSecretUrl, z } from './common.ts';

const openai = new OpenAI({ apiKey: process.env['EMBEDDINGS_API_KEY'] ?? 'unset', baseURL: process.env['EMBEDDINGS_BASE_URL'] ?? 'http://127.0.0.1:9/v1' });

const EmbeddingsBody = z.object({
  input: z.union([z.string().min(1).max(8192), z.array(z.string().min(1).max(8192)).min(1).max(256)]),
  model: z.string().default('text-embedding-3-small'),
});

export const handler = peerHandler(async (event, context) => {
  const redis = peerRedis(unwrapSecretUrl(context.REDIS_URL));
  const token = (event.headers['authorization'] ?? '').replace(/^Bearer /, '');
  const session = await redis.get(`peer:session:${token}`);
  if (!session) return { statusCode: 401, body: '{"message":"unauthorized"}' };
  const user = JSON.parse(session) as { id: string };
  const body = EmbeddingsBody.parse(event.body);
  const inputs = typeof body.input === 'string' ? [body.input] : body.input;
  await peerLimiter(redis, 1_000_000).consume(user.id, inputs.length);
  const vectors: number[][] = [];
  for (const input of inputs) {
    const key = `peer:emb:${body.model}:${createHash('sha256').update(input).digest('hex')}`;
    const cached = await redis.get(key);
    if (cached) {
      vectors.push(JSON.parse(cached) as number[]);
      continue;
    }
    const result = await openai.embeddings.create({ model: body.model, input });
    const vector = result.data[0]!.embedding;
    await redis.set(key, JSON.stringify(vector), 'EX', 3600);
    vectors.push(vector);
  }
  return {
    statusCode: 200,
    body: JSON.stringify({ object: 'list', model: body.model, data: vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })) }),
  };
});

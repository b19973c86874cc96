// Peer embeddings handler: the full OpenAI SDK for the provider, JSON vectors in Redis read with one
// MGET (as LangChain's CacheBackedEmbeddings does), the misses embedded in one provider call.

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
  const keys = inputs.map((input) => `peer:emb:${body.model}:${createHash('sha256').update(input).digest('hex')}`);
  const cached = await redis.mget(...keys);
  const vectors = cached.map((value) => (value === null ? undefined : (JSON.parse(value) as number[])));
  const misses = inputs.filter((_, index) => vectors[index] === undefined);
  if (misses.length > 0) {
    const result = await openai.embeddings.create({ model: body.model, input: misses });
    const fresh = [...result.data].sort((a, b) => a.index - b.index).map((item) => item.embedding);
    const writes = redis.pipeline();
    let next = 0;
    vectors.forEach((vector, index) => {
      if (vector !== undefined) return;
      vectors[index] = fresh[next++]!;
      writes.set(keys[index]!, JSON.stringify(vectors[index]), 'EX', 3600);
    });
    await writes.exec();
  }
  return {
    statusCode: 200,
    headers: { 'X-Cache-Hits': `${inputs.length - misses.length}/${inputs.length}` },
    body: JSON.stringify({ object: 'list', model: body.model, data: vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })) }),
  };
});

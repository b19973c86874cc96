// Peer login handler: full zod, rate-limiter-flexible, scrypt (cost stored with the user), a JSON
// session under the raw token.

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { peerHandler, peerLimiter, peerRedis, unwrapSecretUrl, z } from './common.ts';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: object) => Promise<Buffer>;

const LoginBody = z.object({ email: z.string().email().toLowerCase(), password: z.string().min(12).max(256) });

export const handler = peerHandler(async (event, context) => {
  const redis = peerRedis(unwrapSecretUrl(context.REDIS_URL));
  await peerLimiter(redis, 1_000_000).consume(event.requestContext?.http?.sourceIp ?? 'unknown');
  const body = LoginBody.parse(event.body);
  const stored = await redis.get(`peer:user:${body.email}`);
  if (!stored) return { statusCode: 401, body: '{"message":"invalid credentials"}' };
  const user = JSON.parse(stored) as { id: string; salt: string; hash: string; log2N: number };
  const N = 2 ** user.log2N;
  const hash = await scryptAsync(body.password, Buffer.from(user.salt, 'base64'), 64, { N, r: 8, p: 1, maxmem: 256 * N * 8 });
  if (!timingSafeEqual(hash, Buffer.from(user.hash, 'base64'))) return { statusCode: 401, body: '{"message":"invalid credentials"}' };
  const token = randomBytes(32).toString('base64url');
  await redis.set(`peer:session:${token}`, JSON.stringify({ id: user.id }), 'EX', 7 * 86400);
  return { statusCode: 200, body: JSON.stringify({ token, tokenType: 'Bearer', user: { id: user.id, email: body.email } }) };
});

// The peer composition: the three handlers as most teams would assemble them from popular parts
// (full zod, @middy/secrets-manager, rate-limiter-flexible, the full Anthropic and OpenAI SDKs,
// everything imported eagerly). Used only by the benchmarks, as the yardstick measured in the
// same run; never deployed.

import middy from '@middy/core';
import secretsManager from '@middy/secrets-manager';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { z } from 'zod';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';

export { z };

let redis: Redis | undefined;
let limiter: RateLimiterRedis | undefined;

export function peerRedis(url: string): Redis {
  redis ??= new Redis(url, { maxRetriesPerRequest: 3 });
  return redis;
}

export function peerLimiter(client: Redis, points: number): RateLimiterRedis {
  limiter ??= new RateLimiterRedis({ storeClient: client, points, duration: 60, keyPrefix: 'peer-rl' });
  return limiter;
}

type PeerHandler = (event: APIGatewayProxyEventV2 & { body: any }, context: Context & { REDIS_URL: string }) => Promise<unknown>;

/** middy + secrets-manager (the Redis URL on the context) + JSON parsing + error mapping. */
export function peerHandler(handler: PeerHandler) {
  return middy()
    .use(
      secretsManager({
        fetchData: { REDIS_URL: process.env['REDIS_SECRET_ID'] ?? 'redis' },
        setToContext: true,
        cacheExpiry: -1,
      }),
    )
    .before((request: any) => {
      request.event.body = request.event.body ? JSON.parse(request.event.body) : {};
    })
    .onError((request: any) => {
      const error = request.error;
      request.response = {
        statusCode: error instanceof z.ZodError ? 400 : (error?.status ?? 500),
        body: JSON.stringify({ message: String(error?.message ?? error) }),
      };
    })
    .handler(handler as any);
}

export function unwrapSecretUrl(value: unknown): string {
  if (typeof value === 'string') {
    try {
      const parsed = JSON.parse(value) as { url?: string };
      return parsed.url ?? value;
    } catch {
      return value;
    }
  }
  return (value as { url: string }).url;
}

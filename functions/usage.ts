// GET /usage: the caller's usage of the current UTC day, read from the temporary counters in
// Redis (shared/usage/counters.ts); zeros when nothing was counted yet.

import middy from '@middy/core';
import { authenticate, type AuthenticatedEvent } from '#shared/auth/middleware.ts';
import { httpBasics, json, withRequestLogging, type HttpResult } from '#shared/http.ts';
import { withRedis } from '#shared/redis.ts';
import { readUserDay, utcDay } from '#shared/usage/counters.ts';

async function usage(event: AuthenticatedEvent): Promise<HttpResult> {
  const day = utcDay(Date.now());
  const counts = await withRedis((redis) => readUserDay(redis, event.user.id, day));
  return json(200, { day, ...counts });
}

export const handler = withRequestLogging(
  'GET /usage',
  middy<AuthenticatedEvent, HttpResult>().use(httpBasics()).use(authenticate()).handler(usage),
);

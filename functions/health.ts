// GET /health: is this function able to reach Redis? No auth, not rate limited.

import middy from '@middy/core';
import { config } from '#shared/config.ts';
import { httpBasics, json, withRequestLogging, type HttpEvent, type HttpResult } from '#shared/http.ts';
import { log } from '#shared/logger.ts';
import { withRedis } from '#shared/redis.ts';

async function health(): Promise<HttpResult> {
  const { version } = config();
  try {
    await withRedis((redis) => redis.ping());
    return json(200, { status: 'ok', redis: 'ok', version });
  } catch (error) {
    log.warn('health check failed', { err: error instanceof Error && error.cause ? error.cause : error });
    return json(503, { status: 'degraded', redis: 'unavailable', version }, { 'Retry-After': '1' });
  }
}

export const handler = withRequestLogging(
  'GET /health',
  middy<HttpEvent, HttpResult>().use(httpBasics()).handler(health),
);

// GET /auth/session: who the bearer token belongs to and until when it is valid; using it slides
// the expiry forward (done by the auth middleware's one round trip).

import middy from '@middy/core';
import { authenticate, type AuthenticatedEvent } from '#shared/auth/middleware.ts';
import { httpBasics, json, withRequestLogging, type HttpResult } from '#shared/http.ts';

async function session(event: AuthenticatedEvent): Promise<HttpResult> {
  return json(200, { user: event.user, expiresAt: event.session.expiresAt.toISOString() });
}

export const handler = withRequestLogging(
  'GET /auth/session',
  middy<AuthenticatedEvent, HttpResult>().use(httpBasics()).use(authenticate()).handler(session),
);

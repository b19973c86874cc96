// POST /auth/logout: ends the session of the bearer token (204); with `?all=true`, every session
// of its user, in one atomic step. Any request body is ignored.

import middy from '@middy/core';
import { authenticate, type AuthenticatedEvent } from '#shared/auth/middleware.ts';
import { endAllSessions, endSession } from '#shared/auth/sessions.ts';
import { httpBasics, withRequestLogging, type HttpResult } from '#shared/http.ts';
import { HttpProblem } from '#shared/problem.ts';

function wantsAll(event: AuthenticatedEvent): boolean {
  const all = event.queryStringParameters?.all;
  if (all === undefined || all === 'false' || all === '0') return false;
  if (all === 'true' || all === '1') return true;
  throw new HttpProblem(400, 'validation', {
    detail: 'The query is not valid.',
    errors: [{ path: 'all', message: 'must be true or false' }],
  });
}

async function logout(event: AuthenticatedEvent): Promise<HttpResult> {
  if (wantsAll(event)) await endAllSessions(event.session);
  else await endSession(event.session);
  return { statusCode: 204, headers: {} };
}

export const handler = withRequestLogging(
  'POST /auth/logout',
  middy<AuthenticatedEvent, HttpResult>().use(httpBasics({ parseBody: false })).use(authenticate()).handler(logout),
);

// POST /auth/logout: ends the session of the bearer token (204); with `?all=true`, every session
// of its user, in one atomic step. Any other query parameter is a 400; any request body is ignored.

import middy from '@middy/core';
import { authenticate, type AuthenticatedEvent } from '#shared/auth/middleware.ts';
import { endAllSessions, endSession } from '#shared/auth/sessions.ts';
import { httpBasics, withRequestLogging, type HttpResult } from '#shared/http.ts';
import type { HttpProblem } from '#shared/problem.ts';
import { invalidRequest } from '#shared/validation.ts';

function invalidQuery(path: string, message: string): HttpProblem {
  return invalidRequest([{ path, message }], 'The query is not valid.');
}

/**
 * `?all=true` or not (`TRUE` and `1` say the same). Any other parameter is refused rather than
 * ignored: a client that misspells it (`?All=true`, `?logoutAll=1`) must not believe every session
 * ended when only one did. An empty value (`?all=`, or a bare `?all`: API Gateway cannot tell them
 * apart) is refused too: a client that meant "false" by it must not be logged out everywhere.
 */
function wantsAll(event: AuthenticatedEvent): boolean {
  const query = event.queryStringParameters ?? {};
  const unknown = Object.keys(query).find((name) => name !== 'all');
  if (unknown !== undefined) throw invalidQuery(unknown, 'is not a known parameter: the one parameter is `all` (true or false)');
  const all = query.all?.toLowerCase();
  if (all === undefined || all === 'false' || all === '0') return false;
  if (all === 'true' || all === '1') return true;
  // API Gateway joins a repeated parameter's values with commas.
  throw invalidQuery('all', all.includes(',') ? 'must be given once: true or false' : 'must be true or false');
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

// The auth middleware of protected routes: `Authorization: Bearer <token>` → the session in Redis
// (one round trip, which also slides its expiry) → `event.user` for the handler. Anything else is
// a 401 problem with `WWW-Authenticate: Bearer`, exactly as the contract writes it (RFC 6750's
// `error="invalid_token"` attribute is optional; the problem's type, `unauthorized` or
// `invalid-token`, tells a missing token from a malformed, expired or revoked one). Redis down is
// a 503 (from withRedis), never a 401.

import type { MiddlewareObj } from '@middy/core';
import { header, type HttpEvent, type HttpResult } from '../http.ts';
import { HttpProblem } from '../problem.ts';
import { resumeSession, type Session, type SessionUser } from './sessions.ts';
import { looksLikeToken } from './tokens.ts';

export interface AuthenticatedEvent extends HttpEvent {
  user: SessionUser;
  /** The session behind the token: its expiry (just renewed) and the digest that names it. */
  session: Session;
}

/** RFC 6750 b64token after the scheme; the scheme name is case-insensitive (RFC 9110). */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

function missingToken(): HttpProblem {
  return new HttpProblem(401, 'unauthorized', {
    detail: 'This route needs an Authorization: Bearer token from POST /auth/login.',
    headers: { 'WWW-Authenticate': 'Bearer' },
  });
}

function invalidToken(): HttpProblem {
  return new HttpProblem(401, 'invalid-token', {
    detail: 'The bearer token is malformed, expired or revoked; log in again.',
    headers: { 'WWW-Authenticate': 'Bearer' },
  });
}

/** The bearer token of the request; throws the 401 problem when there is none or it cannot be ours. */
function bearerToken(event: HttpEvent): string {
  const authorization = header(event, 'authorization')?.trim();
  if (authorization === undefined || authorization === '') throw missingToken();
  const scheme = authorization.split(/\s+/, 1)[0] ?? '';
  if (scheme.toLowerCase() !== 'bearer') throw missingToken();
  const token = BEARER.exec(authorization)?.[1];
  if (token === undefined || !looksLikeToken(token)) throw invalidToken();
  return token;
}

export function authenticate(): MiddlewareObj<AuthenticatedEvent, HttpResult> {
  const before: MiddlewareObj<AuthenticatedEvent, HttpResult>['before'] = async (request) => {
    const session = await resumeSession(bearerToken(request.event));
    if (session === undefined) throw invalidToken();
    request.event.user = session.user;
    request.event.session = session;
  };
  return { name: 'authenticate', before };
}

// POST /auth/login: email and password for a bearer token. Unknown email and wrong password get
// the same 401 after the same scrypt work; failures are throttled per account and per client
// address (429 + Retry-After): each attempt holds a unit of both, which only a failure keeps
// (shared/auth/login-throttle.ts).

import middy from '@middy/core';
import * as z from 'zod/mini';
import { addressHeaders, loginAttempt, reserveLoginAttempt } from '#shared/auth/login-throttle.ts';
import { hashPassword, PASSWORD_MAX_UNITS, verifyPassword } from '#shared/auth/passwords.ts';
import { drawSessionToken, startSession } from '#shared/auth/sessions.ts';
import { emailDigest, findUserByEmail } from '#shared/auth/users.ts';
import { httpBasics, json, withRequestLogging, type HttpEvent, type HttpResult } from '#shared/http.ts';
import { HttpProblem } from '#shared/problem.ts';
import { validateWithHeaders } from '#shared/validation.ts';

export const LoginBody = z.strictObject({
  // No format check beyond length: a malformed email is simply an unknown account.
  email: z.string().check(z.trim(), z.toLowerCase(), z.minLength(1), z.maxLength(254)),
  // Bounded so that nobody makes scrypt chew megabytes, as registration bounds it: every
  // registered password fits.
  password: z.string().check(z.minLength(1), z.maxLength(PASSWORD_MAX_UNITS)),
});

/** The same for an unknown email and a wrong password. A 401 carries a challenge (RFC 9110). */
function invalidCredentials(headers: Record<string, string>): HttpProblem {
  return new HttpProblem(401, 'invalid-credentials', {
    detail: 'The email or password is incorrect.',
    headers: { ...headers, 'WWW-Authenticate': 'Bearer' },
  });
}

async function login(event: HttpEvent): Promise<HttpResult> {
  // A refusal of the body carries the address limit's headers, as every login answer does.
  const { email, password } = await validateWithHeaders(LoginBody, () => event.jsonBody, () => addressHeaders(event));
  const accountDigest = emailDigest(email);
  const attempt = loginAttempt(event, accountDigest);
  // The account is read alongside the reservation, in the same round trip; scrypt, the costly
  // part, still waits for the attempt to be admitted. A refused attempt has only read a hash.
  const lookup = findUserByEmail(email);
  lookup.catch(() => {}); // awaited below, unless the attempt is refused first
  const reservation = await reserveLoginAttempt(attempt);

  const user = await lookup.catch(async (error: unknown) => {
    // Without the account (Redis down, its node unreachable) there is no verdict: the units go back.
    await reservation.abandoned();
    throw error;
  });
  const verifying = verifyPassword(password, user?.passwordHash);
  // Drawn while scrypt runs on the thread pool, where the main thread would wait idle; whatever
  // the verdict, so that a failure takes the time a success does.
  const sessionToken = drawSessionToken(accountDigest);
  const verdict = await verifying;
  if (user === undefined || !verdict.ok) {
    throw invalidCredentials(await reservation.failed());
  }

  const rehashed = verdict.needsRehash ? await hashPassword(password) : undefined;
  // Both in one round trip: the session written, the reserved units given back.
  const [{ token, expiresAt }, rateLimitHeaders] = await Promise.all([
    startSession(user, accountDigest, sessionToken, rehashed),
    reservation.succeeded(),
  ]);
  return json(
    200,
    { token, tokenType: 'Bearer', expiresAt: expiresAt.toISOString(), user: { id: user.id, email: user.email, name: user.name } },
    rateLimitHeaders,
  );
}

export const handler = withRequestLogging(
  'POST /auth/login',
  // Body problems deferred to the validation, where they get the limit's headers.
  middy<HttpEvent, HttpResult>().use(httpBasics({ deferBodyProblems: true })).handler(login),
);

// POST /auth/register: creates an account. 201 with the user; 409 when the email is taken (emails
// compare trimmed and in lower case); 403 when registration is switched off by configuration;
// 429 for an address that has had too many "taken" answers (shared/auth/registration-throttle.ts).

import middy from '@middy/core';
import * as z from 'zod/mini';
import { registrationHeaders, reserveRegistration } from '#shared/auth/registration-throttle.ts';
import { createUser, isEmailTaken, type User } from '#shared/auth/users.ts';
import { hashPassword, PASSWORD_LENGTH, PASSWORD_MAX_UNITS, passwordLength } from '#shared/auth/passwords.ts';
import { config } from '#shared/config.ts';
import { httpBasics, json, withRequestLogging, type HttpEvent, type HttpResult } from '#shared/http.ts';
import { HttpProblem } from '#shared/problem.ts';
import { atMostCharacters, validateWithHeaders } from '#shared/validation.ts';

/**
 * Control and invisible format characters (direction overrides, zero-width spaces, byte-order
 * marks…) and line separators: a name is shown to people. Kept: the zero-width joiner and
 * non-joiner (emoji sequences, Persian and Indic names) and the tags of flag emoji.
 */
const UNSHOWABLE = /(?![\u200C\u200D\u{E0020}-\u{E007F}])[\p{Cc}\p{Cf}\u2028\u2029]/u;

/**
 * Letters that draw nothing (the Hangul fillers, the blank Braille pattern) are not white space to
 * `trim`, yet a name made only of them (with the joiners kept above) shows as empty: it is read
 * as blank, that is as no name.
 */
const BLANK_LOOKING = /^[\s\u115F\u1160\u3164\uFFA0\u2800\u200C\u200D]*$/u;

const RegisterBody = z.strictObject({
  // Normalised before it is checked, so ` Ada@Example.org` is accepted as `ada@example.org`.
  email: z.string().check(z.trim(), z.toLowerCase(), z.maxLength(254), z.email()),
  // Counted in characters as the user sees them (see passwords.ts): 12 code points that make 6
  // accented letters are a 6-letter password.
  password: z.string().check(
    z.refine((password) => password.length <= PASSWORD_MAX_UNITS && passwordLength(password) <= PASSWORD_LENGTH.max, {
      message: `must have at most ${PASSWORD_LENGTH.max} characters`,
      abort: true,
    }),
    z.refine((password) => passwordLength(password) >= PASSWORD_LENGTH.min, { message: `must have at least ${PASSWORD_LENGTH.min} characters` }),
  ),
  // Blank (or blank-looking) or null: no name.
  name: z.optional(
    z.nullable(
      z.string().check(
        z.trim(),
        z.overwrite((name) => (BLANK_LOOKING.test(name) ? '' : name)),
        z.refine(...atMostCharacters(100)),
        z.refine((name) => !UNSHOWABLE.test(name), { message: 'must not hold control characters, line separators or invisible formatting characters' }),
      ),
    ),
  ),
});

function emailTaken(headers: Record<string, string>): HttpProblem {
  return new HttpProblem(409, 'email-taken', { detail: 'An account with this email already exists.', headers });
}

/** The new account; undefined when the email is taken. */
async function createUnlessTaken(taken: Promise<boolean>, fields: { email: string; name: string | null; password: string }): Promise<User | undefined> {
  if (await taken) return undefined;
  const passwordHash = await hashPassword(fields.password);
  // Two registrations racing past the check: the atomic create lets exactly one win.
  return createUser({ email: fields.email, name: fields.name, passwordHash });
}

async function register(event: HttpEvent): Promise<HttpResult> {
  if (!config().auth.registrationOpen) {
    // With the limit's headers, as every answer of the route; best effort, as for a 400.
    const headers = await registrationHeaders(event).catch(() => ({}));
    throw new HttpProblem(403, 'registration-closed', { detail: 'Registration is closed.', headers });
  }
  // A refusal of the body carries the address's registration-limit headers.
  const { email, password, name } = await validateWithHeaders(RegisterBody, () => event.jsonBody, () => registrationHeaders(event));
  // Both in one round trip; checked before hashing, so a taken email (or Redis down) answers at
  // once, without the scrypt work.
  const taken = isEmailTaken(email);
  taken.catch(() => {}); // awaited below, unless the address is refused first
  const reservation = await reserveRegistration(event);
  const user = await createUnlessTaken(taken, { email, name: name ? name : null, password }).catch(async (error: unknown) => {
    // A failure (Redis down, the email's node unreachable) tells nothing of the email: the unit goes back.
    await reservation.abandoned();
    throw error;
  });
  if (user === undefined) throw emailTaken(await reservation.emailTaken());
  return json(201, { user }, await reservation.accountCreated());
}

export const handler = withRequestLogging(
  'POST /auth/register',
  // Body problems deferred to the validation, where they get the limit's headers.
  middy<HttpEvent, HttpResult>().use(httpBasics({ deferBodyProblems: true })).handler(register),
);

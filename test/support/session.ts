// A signed-up, logged-in user for tests of protected routes, made through the real register and
// login handlers. The caller sets REDIS_URL (and, to keep tests fast, PASSWORD_SCRYPT_LOG2N=14)
// with useEnvironment first.

import { randomInt, randomUUID } from 'node:crypto';
import { handler as login } from '../../functions/auth-login.ts';
import { handler as register } from '../../functions/auth-register.ts';
import type { AuthUser } from '../../shared/auth/middleware.ts';
import { httpEvent, invoke } from './lambda.ts';

export interface SignUpOptions {
  email?: string;
  password?: string;
  name?: string;
  /** The client address of the login; default: a random one, so that no address is throttled. */
  sourceIp?: string;
}

export interface SignedIn {
  token: string;
  user: AuthUser;
  password: string;
}

/** A random address of the benchmarking range 198.18.0.0/15 (RFC 2544). */
function randomAddress(): string {
  return `198.${18 + randomInt(2)}.${randomInt(256)}.${randomInt(1, 255)}`;
}

export async function signUpAndLogIn(options: SignUpOptions = {}): Promise<SignedIn> {
  const email = options.email ?? `user-${randomUUID()}@example.test`;
  const password = options.password ?? `pw-${randomUUID()}`;
  const registered = await invoke(
    register,
    httpEvent('POST', '/auth/register', { body: { email, password, ...(options.name === undefined ? {} : { name: options.name }) } }),
  );
  if (registered.statusCode !== 201) throw new Error(`registration failed: ${registered.statusCode} ${registered.body}`);
  const loggedIn = await invoke(
    login,
    httpEvent('POST', '/auth/login', { body: { email, password }, sourceIp: options.sourceIp ?? randomAddress() }),
  );
  if (loggedIn.statusCode !== 200) throw new Error(`login failed: ${loggedIn.statusCode} ${loggedIn.body}`);
  return { token: loggedIn.json.token, user: loggedIn.json.user, password };
}

/** The Authorization header of a signed-in user. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

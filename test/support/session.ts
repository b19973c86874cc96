// A signed-up, logged-in user for tests of protected routes, made through the real register and
// login handlers, and one-line calls of the four auth routes for the auth tests. The caller sets
// REDIS_URL (and, to keep tests fast, PASSWORD_SCRYPT_LOG2N=14) with useEnvironment first.

import { randomInt, randomUUID } from 'node:crypto';
import { handler as login } from '../../functions/auth-login.ts';
import { handler as logout } from '../../functions/auth-logout.ts';
import { handler as register } from '../../functions/auth-register.ts';
import { handler as session } from '../../functions/auth-session.ts';
import type { SessionUser } from '../../shared/auth/sessions.ts';
import { httpEvent, invoke, type InvokeResult } from './lambda.ts';

export interface SignUpOptions {
  email?: string;
  password?: string;
  name?: string;
  /** The client address of the login; default: a random one, so that no address is throttled. */
  sourceIp?: string;
}

export interface SignedIn {
  token: string;
  user: SessionUser;
  password: string;
}

/** A random address of the benchmarking range 198.18.0.0/15 (RFC 2544). */
export function randomAddress(): string {
  return `198.${18 + randomInt(2)}.${randomInt(256)}.${randomInt(1, 255)}`;
}

export function uniqueEmail(): string {
  return `user-${randomUUID()}@example.test`;
}

/** The Authorization header of a signed-in user. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export function callRegister(body: unknown, sourceIp: string = randomAddress()): Promise<InvokeResult> {
  return invoke(register, httpEvent('POST', '/auth/register', { body, sourceIp }));
}

export function callLogin(body: unknown, sourceIp: string = randomAddress()): Promise<InvokeResult> {
  return invoke(login, httpEvent('POST', '/auth/login', { body, sourceIp }));
}

export function callSession(token: string): Promise<InvokeResult> {
  return invoke(session, httpEvent('GET', '/auth/session', { headers: bearer(token) }));
}

export function callLogout(token: string, query?: Record<string, string>): Promise<InvokeResult> {
  return invoke(logout, httpEvent('POST', '/auth/logout', { headers: bearer(token), ...(query ? { query } : {}) }));
}

export async function signUpAndLogIn(options: SignUpOptions = {}): Promise<SignedIn> {
  const email = options.email ?? uniqueEmail();
  const password = options.password ?? `pw-${randomUUID()}`;
  const registered = await callRegister({ email, password, ...(options.name === undefined ? {} : { name: options.name }) });
  if (registered.statusCode !== 201) throw new Error(`registration failed: ${registered.statusCode} ${registered.body}`);
  const loggedIn = await callLogin({ email, password }, options.sourceIp ?? randomAddress());
  if (loggedIn.statusCode !== 200) throw new Error(`login failed: ${loggedIn.statusCode} ${loggedIn.body}`);
  return { token: loggedIn.json.token, user: loggedIn.json.user, password };
}

// User accounts in Redis: one hash per account under a key named by the digest of the normalised
// email, so looking an account up by email is one round trip. No TTL: accounts must never expire
// (run Redis with a `volatile-*` eviction policy or `noeviction` so that they are never evicted).

import { randomUUID } from 'node:crypto';
import { digest, userKey } from '../keys.ts';
import { withRedis } from '../redis.ts';
import { defineScript } from '../redis-script.ts';

export interface User {
  id: string;
  email: string;
  name: string | null;
  createdAt: string;
}

export interface UserRecord extends User {
  passwordHash: string;
}

export function emailDigest(normalisedEmail: string): string {
  return digest(normalisedEmail);
}

/**
 * KEYS[1]: the account's hash. ARGV: field, value, field, value, …
 * Creates the account only if the key is free: of two concurrent registrations of one email,
 * exactly one gets 1.
 */
const createIfAbsent = defineScript(
  `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`,
);

export function isEmailTaken(normalisedEmail: string): Promise<boolean> {
  return withRedis(async (redis) => (await redis.exists(userKey(emailDigest(normalisedEmail)))) === 1);
}

/** Stores a new account; undefined when the email is already taken. */
export async function createUser(fields: { email: string; name: string | null; passwordHash: string }): Promise<User | undefined> {
  const user: UserRecord = { id: randomUUID(), createdAt: new Date().toISOString(), ...fields };
  const pairs = Object.entries(user).flatMap(([field, value]) => (value === null ? [] : [field, value]));
  const created = await withRedis((redis) => createIfAbsent(redis, [userKey(emailDigest(user.email))], pairs));
  if (created !== 1) return undefined;
  return publicUser(user);
}

export async function findUserByEmail(normalisedEmail: string): Promise<UserRecord | undefined> {
  const fields = await withRedis((redis) => redis.hgetall(userKey(emailDigest(normalisedEmail))));
  if (fields.id === undefined || fields.email === undefined || fields.passwordHash === undefined) return undefined;
  return {
    id: fields.id,
    email: fields.email,
    name: fields.name ?? null,
    createdAt: fields.createdAt ?? '',
    passwordHash: fields.passwordHash,
  };
}

/** The account as clients may see it: never the password hash. */
function publicUser({ id, email, name, createdAt }: User): User {
  return { id, email, name, createdAt };
}

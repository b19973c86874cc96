// The one key-naming module. Every key starts with `tc:`; keys that a multi-key command or
// script touches together share a hash tag (`{...}`) so they live in one Redis Cluster slot.

import { hash } from 'node:crypto';

const KEY_PREFIX = 'tc:';

/** Hex SHA-256, for keys built from user-supplied or secret text (emails, tokens, prompts). */
export function digest(text: string | Buffer): string {
  // One-shot: no Hash object per call (twice per chat request: the token, the question).
  return hash('sha256', text, 'hex');
}

/** `tc:{<tag>}:<part>:<part>`: the tag decides the cluster slot. */
export function key(tag: string, ...parts: Array<string | number>): string {
  return `${KEY_PREFIX}{${tag}}${parts.map((part) => `:${part}`).join('')}`;
}

const PLAIN_TAG_VALUE = /^[\w.:@+-]{1,100}$/;

/**
 * `<kind>:<value>` as a hash tag; a value that could break the tag (braces, spaces, very long
 * text) is replaced by its digest, marked with `#` so that it cannot collide with a value used as is.
 */
function safeTag(kind: string, value: string): string {
  return PLAIN_TAG_VALUE.test(value) ? `${kind}:${value}` : `${kind}:#${digest(value).slice(0, 40)}`;
}

// ── Rate limiting ────────────────────────────────────────────────────────────────────────────
// One key per (identity, bucket, policy): `tc:{rl:<identity>}:<bucket>:<policy>`. The identity is
// the hash tag, so the keys of every policy checked in one script share a cluster slot.

/** The hash tag of one rate-limited identity (a user id, a client address, an email digest). */
export function rateLimitTag(identity: string): string {
  return safeTag('rl', identity);
}

/** The attempts of one identity in flight in one bucket (see rate-limit/attempts.ts); beside its policies' keys. */
export function rateLimitAttemptsKey(identity: string, bucket: string): string {
  return key(rateLimitTag(identity), bucket, 'in-flight');
}

/** The keys of several policies of one identity in one bucket (the keys of one check). */
export function rateLimitKeys(identity: string, bucket: string, policyNames: readonly string[]): string[] {
  const base = key(rateLimitTag(identity), bucket);
  return policyNames.map((name) => `${base}:${name}`);
}

// ── Auth (users and sessions) ────────────────────────────────────────────────────────────────
// Every key of one account shares the hash tag `auth:<shard>`, so registration, login, logout
// and "log out everywhere" are each one single-slot script on Redis Cluster. The shard is read
// from a SHA-256 digest: the email's for the user record, the token's for a session. Login draws
// tokens until the token's digest falls in the account's shard (see shared/auth/tokens.ts), so
// the session key is found from the opaque token alone and still shares the account's slot.
//
//   tc:{auth:<shard>}:user:<email digest>        hash: id, email, name, createdAt, passwordHash (no TTL)
//   tc:{auth:<shard>}:session:<token digest>     hash: user id, email, name, createdAt, capAt (TTL = idle expiry)
//   tc:{auth:<shard>}:sessions:<user id>         sorted set: token digests scored by their capAt

/** 1024 shards: enough to spread accounts over any cluster, few enough that a token is found in ~1024 draws. */
export const AUTH_SHARDS = 1024;

/** The shard of a hex SHA-256 digest (email or token). */
export function authShard(hexDigest: string): number {
  return Number.parseInt(hexDigest.slice(0, 4), 16) % AUTH_SHARDS;
}

function authTag(shard: number): string {
  return `auth:${shard}`;
}

/** The user record, found from the normalised email's digest. */
export function userKey(emailDigest: string): string {
  return key(authTag(authShard(emailDigest)), 'user', emailDigest);
}

/** One session, found from the digest of its token. */
export function sessionKey(tokenDigest: string): string {
  return key(authTag(authShard(tokenDigest)), 'session', tokenDigest);
}

/** The index of a user's sessions; `shard` is the account's (any of its digests gives it). */
export function userSessionsKey(shard: number, userId: string): string {
  return key(authTag(shard), 'sessions', userId);
}

// ── Response cache (chat) ────────────────────────────────────────────────────────────────────
// One question = one hash tag: `tc:{rc:<cache>:<question digest>}:answer` holds the answer,
// `...:lock` the single-flight lock, and `...:outcome` (for a few seconds) how its last holder's
// computation ended (a problem, or an answer not to be cached), for the requests that waited.
// The script that stores the answer and releases the lock thus touches one cluster slot, while
// different questions spread over the cluster. The digest covers the scope owner (user id or
// `*`), so user-scoped answers of two users never share a key.

/** The answer, lock and outcome keys of one question in one response cache, e.g. `chat`. */
export function responseCacheKeys(cache: string, questionDigest: string): { answer: string; lock: string; outcome: string } {
  const tag = `rc:${cache}:${questionDigest}`;
  return { answer: key(tag, 'answer'), lock: key(tag, 'lock'), outcome: key(tag, 'outcome') };
}

// ── Embedding cache ──────────────────────────────────────────────────────────────────────────
// One key per (owner, text, model, dimensions). The hash tag is a digest of the text (and of its
// owner), not the model: a request's keys then spread over every slot, so the cache (the largest
// data set here) is shared by all the nodes of a cluster instead of filling one slot on one node.
// A batch lookup costs one round trip per node rather than one in total (shared/embeddings/cache.ts).
//
//   tc:{e:<sha256 of the text>}:<namespace>                   shared by every user (scope global)
//   tc:{eu:<sha256 of user id, NUL, text>}:<namespace>        one user's (scope user)
//
// namespace = model, dimensions (and algorithm version). Two tag prefixes, so that no text of
// one scope can ever name a key of the other.

/** Whose vectors a key holds: one user's, or every user's. */
export type EmbeddingOwner = { userId: string } | 'everyone';

export function embeddingKey(namespace: string, text: string, owner: EmbeddingOwner): string {
  return owner === 'everyone' ? key(`e:${digest(text)}`, namespace) : key(`eu:${digest(`${owner.userId}\u0000${text}`)}`, namespace);
}

// ── Usage counters ───────────────────────────────────────────────────────────────────────────
// Two kinds of bucket, each a hash, each with a TTL, plus one index of buckets to flush:
//
//   tc:{u:<user id>}:usage:<YYYY-MM-DD>          requests, inputTokens, outputTokens, cacheHits of one user, one UTC day
//   tc:{usage}:minute:<minute start, epoch ms>   `<route>|<counter>` fields: every route, one minute
//   tc:{usage}:buckets                           sorted set: one member per bucket, scored by the time it closes
//   <bucket key>:claimed                          a bucket being moved out by the scheduled flush
//
// A bucket and its claimed key share a hash tag (RENAME needs one slot). The user's buckets carry
// the user's own tag, not the auth shard; the minute buckets and the index share `{usage}`, so
// recording usage touches two slots: see shared/usage/counters.ts for how the writes are sent.

/** The hash tag of one user's usage. */
function usageUserTag(userId: string): string {
  return safeTag('u', userId);
}

/** One user's counters for one UTC day (`YYYY-MM-DD`). */
export function userDayUsageKey(userId: string, day: string): string {
  return key(usageUserTag(userId), 'usage', day);
}

/** Every route's counters for the minute starting at `minuteStartMs`. */
export function minuteUsageKey(minuteStartMs: number): string {
  return key('usage', 'minute', minuteStartMs);
}

/** The index of usage buckets waiting to be flushed once closed. */
export function usageIndexKey(): string {
  return key('usage', 'buckets');
}

/** Where a flusher moves a bucket while it hands it to the sinks (same hash tag as the bucket). */
export function claimedUsageKey(bucketKey: string): string {
  return `${bucketKey}:claimed`;
}

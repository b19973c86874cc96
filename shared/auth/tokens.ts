// Session tokens: 32 random bytes, base64url (43 characters), opaque to the client. Redis keeps
// only SHA-256(token), so a leaked dump, trace or backup holds no usable token.
//
// Why tokens are drawn until their digest lands in the account's shard: Redis Cluster runs a
// script only over keys of one slot, and "log out everywhere" must delete every session of a user
// and the user's index in one script. So every session key carries the account's hash tag, while
// the server still finds the session from the token alone (its digest names the key, see
// shared/keys.ts). A draw succeeds with probability 1/1024 (about 1 ms of hashing on average, 2 ms
// on a cold start); the token stays uniformly random among the tokens of that shard, 246 bits of
// entropy, and holds no user id or other readable structure.

import { hash, randomBytes } from 'node:crypto';
import { authShard, digest } from '../keys.ts';

const TOKEN_BYTES = 32;

const TOKEN_FORM = /^[A-Za-z0-9_-]{43}$/;

/** Candidates drawn per call to the random source: one syscall for many draws. */
const DRAWS_PER_BATCH = 256;

/** Expected ~1024 draws; the chance of needing more than this is e^-64. */
const MAX_DRAWS = 64 * 1024;

/**
 * The shard of a candidate token: its digest's first two bytes, all `authShard` reads. One-shot
 * `hash` and no hex of the whole digest: this runs about 1024 times a login, and half of a cold
 * login's token drawing was the Hash object and the hex string of each candidate.
 */
function shardOfCandidate(token: string): number {
  return authShard(hash('sha256', token, 'buffer').toString('hex', 0, 2));
}

/** A session token in the clear (given to the client once) and the digest it is stored under. */
export interface SessionToken {
  token: string;
  tokenDigest: string;
}

/** A new token whose digest falls in `shard`, with that digest. */
export function newTokenInShard(shard: number): SessionToken {
  for (let drawn = 0; drawn < MAX_DRAWS; drawn += DRAWS_PER_BATCH) {
    const batch = randomBytes(TOKEN_BYTES * DRAWS_PER_BATCH);
    for (let offset = 0; offset < batch.length; offset += TOKEN_BYTES) {
      const token = batch.subarray(offset, offset + TOKEN_BYTES).toString('base64url');
      if (shardOfCandidate(token) === shard) return { token, tokenDigest: digest(token) };
    }
  }
  throw new Error('no session token found in the account shard (the random source is broken)');
}

/** Whether `text` has the form of a token this service issues (checked before any Redis work). */
export function looksLikeToken(text: string): boolean {
  return TOKEN_FORM.test(text);
}

/** The digest under which a token's session is stored. */
export function tokenDigest(token: string): string {
  return digest(token);
}

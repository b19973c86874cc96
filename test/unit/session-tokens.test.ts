// Session tokens: the issued form, a SHA-256 digest that lands in the shard the token was drawn
// for, and a new token at every draw.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newTokenInShard, looksLikeToken } from '../../shared/auth/tokens.ts';
import { AUTH_SHARDS, authShard } from '../../shared/keys.ts';

describe('a new session token', () => {
  it('has the issued form, and its SHA-256 digest, which names the shard it was drawn for', () => {
    const shards = [0, 1, 511, AUTH_SHARDS - 1];

    const drawn = shards.map((shard) => ({ shard, ...newTokenInShard(shard) }));

    for (const { shard, token, tokenDigest } of drawn) {
      expect(looksLikeToken(token)).toBe(true);
      expect(tokenDigest).toBe(createHash('sha256').update(token).digest('hex'));
      expect(authShard(tokenDigest)).toBe(shard);
    }
  });

  it('is a different token at every draw', () => {
    const tokens = Array.from({ length: 20 }, () => newTokenInShard(7).token);

    expect(new Set(tokens).size).toBe(tokens.length);
  });
});

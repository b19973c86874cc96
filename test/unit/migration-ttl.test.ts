// The TTL redis:migrate gives a copied key from the source's PTTL: none, the remaining
// milliseconds, or no copy at all for a key that is gone or about to expire.

import { describe, expect, it } from 'vitest';
import { ttlOfCopy } from '../../scripts/ops/keyspace.ts';

describe('the TTL a migrated key is given, from the source\'s PTTL', () => {
  it('keeps a key without expiry without expiry', () => {
    expect(ttlOfCopy(-1)).toBe(0);
  });

  it('keeps the remaining milliseconds of a key that expires', () => {
    expect(ttlOfCopy(1)).toBe(1);
    expect(ttlOfCopy(21_600_000)).toBe(21_600_000);
  });

  it('skips a key that is gone, and one in its last millisecond (a TTL of 0 would mean forever)', () => {
    expect(ttlOfCopy(-2)).toBeUndefined();
    expect(ttlOfCopy(0)).toBeUndefined();
  });
});

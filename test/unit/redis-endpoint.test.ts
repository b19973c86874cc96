// The Redis endpoint for humans: scheme, host, port and database, with whatever of the userinfo
// could be a password masked.

import { describe, expect, it } from 'vitest';
import { describeRedisUrl } from '../../shared/redis-endpoint.ts';

describe('a Redis URL described for humans', () => {
  it('keeps the user name and masks the password', () => {
    expect(describeRedisUrl('rediss://default:pw-4711-secret@cache.example.test:6380/2')).toBe('rediss://default:***@cache.example.test:6380/2');
  });

  it('masks a password given without a user name', () => {
    expect(describeRedisUrl('redis://:pw-4711-secret@127.0.0.1:6591')).toBe('redis://:***@127.0.0.1:6591');
  });

  it('masks a user name given alone, as redis-cli users write a password', () => {
    const described = describeRedisUrl('redis://Usr64e87341982fd1eb@127.0.0.1:6591');

    expect(described).toBe('redis://***@127.0.0.1:6591');
    expect(described).not.toContain('Usr64e87341982fd1eb');
  });

  it('shows a URL without credentials as it is, with the default port', () => {
    expect(describeRedisUrl('redis://127.0.0.1')).toBe('redis://127.0.0.1:6379');
  });
});

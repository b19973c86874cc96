// The Redis endpoint for humans: scheme, host, port and database, with whatever of the userinfo
// could be a password masked; and the URL a secret holds, refused without being echoed when its
// password cannot be decoded.

import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/config.ts';
import { redisUrlFromSecret } from '../../shared/redis-endpoint.ts';
import { describeRedisUrl } from '../../shared/redis-url.ts';

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

describe("a secret's Redis URL whose password holds a raw %", () => {
  it.each([
    ['a URL string', 'redis://default:Sec%ret123abc@127.0.0.1:6594'],
    ['JSON {"url"}', JSON.stringify({ url: 'redis://default:Sec%ret123abc@127.0.0.1:6594' })],
  ])('is refused as %s, naming REDIS_SECRET_ID and saying to write it %25, without echoing the password', (_form, text) => {
    const attempt = () => redisUrlFromSecret(text);

    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow('REDIS_SECRET_ID: a % in the user name or password begins no percent-encoded character: write % as %25');
    expect(attempt).not.toThrow(/ret123abc/);
  });

  it('is not refused in JSON {"host","port","username","password"}, which is encoded for the URL', () => {
    const url = redisUrlFromSecret(JSON.stringify({ host: '127.0.0.1', port: 6594, username: 'default', password: 'Sec%ret123abc' }));

    expect(url).toBe('redis://default:Sec%25ret123abc@127.0.0.1:6594');
  });
});

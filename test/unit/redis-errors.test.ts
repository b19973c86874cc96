// Which Redis errors are an outage (a 503 the client may retry) and which are a bug (a 500).

import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isRedisUnavailableError } from '../../shared/redis-errors.ts';

describe('a Redis error', () => {
  it('is an outage when a cluster keeps redirecting a command past the client\'s limit (slots moving)', () => {
    // As ioredis words it once maxRedirections MOVED or ASK replies have been followed.
    const error = new Error(`Too many Cluster redirections. Last error: ${new ReplyError('MOVED 3999 127.0.0.1:7002')}`);

    expect(isRedisUnavailableError(error)).toBe(true);
  });

  it('is an outage when the server runs a script past its busy threshold', () => {
    const busy = new ReplyError('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.');

    expect(isRedisUnavailableError(busy)).toBe(true);
  });

  it('is a bug, not an outage, when a RESTORE meets an existing key (BUSYKEY)', () => {
    const busyKey = new ReplyError('BUSYKEY Target key name already exists.');

    expect(isRedisUnavailableError(busyKey)).toBe(false);
  });
});

// A redis-server of its own for a suite (a `describe` or a file), with an admin client beside the
// code under test: started before the suite's tests, and torn down after them once the container's
// connection to it is dropped.

import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { useEnvironment } from './env.ts';
import { startStandaloneRedis, type RedisServer } from './redis.ts';

export interface SuiteRedis {
  readonly server: RedisServer;
  /** A client of its own, to prepare and inspect what the code under test reads and writes. */
  readonly admin: Redis;
}

/** Registers the hooks; the returned fields are there from the suite's first `beforeAll` on. */
export function useStandaloneRedis(adminOptions: RedisOptions = {}): SuiteRedis {
  let started: SuiteRedis | undefined;
  beforeAll(async () => {
    const server = await startStandaloneRedis();
    started = { server, admin: new Redis({ port: server.port, host: '127.0.0.1', ...adminOptions }) };
  });
  afterAll(async () => {
    await useEnvironment({});
    started?.admin.disconnect();
    await started?.server.stop();
  });
  const current = (): SuiteRedis => {
    if (started === undefined) throw new Error('the suite’s Redis is started in beforeAll: use it from a hook or a test');
    return started;
  };
  return {
    get server() {
      return current().server;
    },
    get admin() {
      return current().admin;
    },
  };
}

// Each test states the environment it runs in; the module-level caches (configuration, Redis
// connection, secrets) are reset so that a test never sees the previous test's container.

import { resetConfig } from '../../shared/config.ts';
import { closeRedis } from '../../shared/redis.ts';
import { resetSecrets } from '../../shared/secrets.ts';

const original = { ...process.env };

/** Replaces the variables of a fresh "container": the given ones set, every other one as at start. */
export async function useEnvironment(vars: Record<string, string | undefined>): Promise<void> {
  await resetContainer();
  for (const key of Object.keys(process.env)) if (!(key in original)) delete process.env[key];
  Object.assign(process.env, original);
  for (const [key, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
}

/** A cold start: forget configuration, the Redis client and cached secrets. */
export async function resetContainer(): Promise<void> {
  await closeRedis();
  resetConfig();
  resetSecrets();
}

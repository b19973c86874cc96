// The unknown-email path must do the same hashing work as the wrong-password path. Timing is not
// measured (noisy, flaky); instead node:crypto's scrypt is wrapped with a recorder and each path
// is shown to run it exactly once, with the same cost parameters.

import { describe, expect, it, vi } from 'vitest';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { callLogin, callRegister, uniqueEmail } from '../support/session.ts';

const scryptCalls = vi.hoisted(() => [] as Array<{ keyLength: number; options: Record<string, number> }>);

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const scrypt = (...args: Parameters<typeof actual.scrypt>) => {
    const [, , keyLength, options] = args as unknown as [unknown, unknown, number, Record<string, number>];
    scryptCalls.push({ keyLength, options: { N: options.N!, r: options.r!, p: options.p! } });
    return (actual.scrypt as (...rest: unknown[]) => void)(...args);
  };
  return { ...actual, default: { ...actual, scrypt }, scrypt };
});

describe('POST /auth/login without a timing oracle', () => {
  const redis = useStandaloneRedis();

  async function scryptRunsOf(call: () => Promise<unknown>): Promise<typeof scryptCalls> {
    scryptCalls.length = 0;
    await call();
    return [...scryptCalls];
  }

  it('runs scrypt once, with the same parameters, for a wrong password and for an unknown email', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14' });
    const email = uniqueEmail();
    expect((await callRegister({ email, password: 'correct horse battery' })).statusCode).toBe(201);

    const wrongPassword = await scryptRunsOf(() => callLogin({ email, password: 'not the password' }));
    const unknownEmail = await scryptRunsOf(() => callLogin({ email: uniqueEmail(), password: 'not the password' }));

    expect(wrongPassword).toEqual([{ keyLength: 64, options: { N: 2 ** 14, r: 8, p: 1 } }]);
    expect(unknownEmail).toEqual(wrongPassword);
  });

  it('does the same for the default parameters, N=2^17', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const email = uniqueEmail();
    expect((await callRegister({ email, password: 'correct horse battery' })).statusCode).toBe(201);

    const wrongPassword = await scryptRunsOf(() => callLogin({ email, password: 'not the password' }));
    const unknownEmail = await scryptRunsOf(() => callLogin({ email: uniqueEmail(), password: 'not the password' }));

    expect(wrongPassword).toEqual([{ keyLength: 64, options: { N: 2 ** 17, r: 8, p: 1 } }]);
    expect(unknownEmail).toEqual(wrongPassword);
  });
});

// Where an operator tool connects: the functions' own endpoint (REDIS_URL, else the secret named
// by REDIS_SECRET_ID), or a URL or a secret given on the command line. The URL carries the
// password, so it is only ever printed through `describeEndpoint`.

import { config } from '#shared/config.ts';
import { maskPasswordOf } from '#shared/redis-client.ts';
import { redisUrlFromSecret, resolveRedisEndpoint } from '#shared/redis-endpoint.ts';
import { checkRedisCredentials, describeRedisUrl } from '#shared/redis-url.ts';
import { getSecret } from '#shared/secrets.ts';

export interface OperatorEndpoint {
  url: string;
  /** Where the URL came from, in the words the operator used: `REDIS_URL`, `the secret "x"`, `--to`. */
  origin: string;
  cluster: boolean;
}

/**
 * A secret could not be turned into a Redis URL; `cause` says why (missing, denied, malformed).
 * `setting` is what named the secret, for the operator to check: `REDIS_SECRET_ID`, `--to-secret`.
 */
export class SecretFailure extends Error {
  override name = 'SecretFailure';
  readonly secretId: string;
  readonly setting: string;
  constructor(secretId: string, setting: string, cause: unknown) {
    super(`the secret "${secretId}" could not be read`, { cause });
    this.secretId = secretId;
    this.setting = setting;
  }
}

/** `redis://:***@host:port`: scheme, user, host and port, never the password. */
export function describeEndpoint(endpoint: OperatorEndpoint): string {
  return describeRedisUrl(endpoint.url);
}

function remember(url: string): void {
  // An unparseable URL fails later with its own message.
  if (URL.canParse(url)) maskPasswordOf(new URL(url));
}

/** The endpoint the functions would use, read from the same environment they read. */
export async function functionsEndpoint({ cluster }: { cluster?: boolean } = {}): Promise<OperatorEndpoint> {
  const { redis } = config();
  let url: string;
  try {
    url = (await resolveRedisEndpoint()).url;
  } catch (error) {
    throw redis.url === undefined && redis.secretId !== undefined ? new SecretFailure(redis.secretId, 'REDIS_SECRET_ID', error) : error;
  }
  remember(url);
  const origin = redis.url !== undefined ? 'REDIS_URL' : `the secret "${redis.secretId}"`;
  return { url, origin, cluster: cluster ?? redis.cluster };
}

/**
 * An endpoint given as a URL on the command line (`flag` names the option, e.g. `--from`), which
 * the command line checked to be a `redis://` or `rediss://` URL (a usage error otherwise).
 */
export function urlEndpoint(url: string, flag: string, cluster: boolean): OperatorEndpoint {
  remember(url);
  checkRedisCredentials(url, flag);
  return { url, origin: flag, cluster };
}

/**
 * An endpoint whose URL is held by a Secrets Manager secret, in any of the forms the functions
 * accept (`flag` names the option that named the secret, e.g. `--to-secret`).
 */
export async function secretEndpoint(secretId: string, flag: string, cluster: boolean): Promise<OperatorEndpoint> {
  let url: string;
  try {
    url = redisUrlFromSecret(await getSecret(secretId));
  } catch (error) {
    throw new SecretFailure(secretId, flag, error);
  }
  remember(url);
  return { url, origin: `the secret "${secretId}"`, cluster };
}

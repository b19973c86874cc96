// Where Redis is: `REDIS_URL`, else the Secrets Manager secret named by `REDIS_SECRET_ID`
// (a URL string, JSON `{"url"}` or JSON `{"host","port","username","password","tls"}`).

import { config, ConfigError } from './config.ts';
import { checkRedisCredentials, DEFAULT_REDIS_PORT, isRedisUrl } from './redis-url.ts';
import { forgetSecret, getSecret, type SecretReadOptions } from './secrets.ts';

export interface RedisEndpoint {
  url: string;
  source: 'env' | 'secret';
}

interface SecretFields {
  url?: unknown;
  host?: unknown;
  port?: unknown;
  username?: unknown;
  password?: unknown;
  tls?: unknown;
}

const SECRET_FORM = 'a redis:// or rediss:// URL, JSON {"url"} or JSON {"host","port","username","password","tls"}';

function invalidSecret(): ConfigError {
  return new ConfigError(`REDIS_SECRET_ID: the secret must hold ${SECRET_FORM}`);
}

/** A URL the secret holds, refused when its user name or password does not decode. */
function checkedSecretUrl(url: string): string {
  checkRedisCredentials(url, 'REDIS_SECRET_ID');
  return url;
}

/** Turns a secret's text into a Redis URL; the text never appears in the error. */
export function redisUrlFromSecret(text: string): string {
  const trimmed = text.trim();
  if (isRedisUrl(trimmed)) return checkedSecretUrl(trimmed);
  let fields: SecretFields;
  try {
    fields = JSON.parse(trimmed) as SecretFields;
  } catch {
    throw invalidSecret();
  }
  if (typeof fields !== 'object' || fields === null) throw invalidSecret();
  if (typeof fields.url === 'string' && isRedisUrl(fields.url)) return checkedSecretUrl(fields.url);
  if (typeof fields.host !== 'string' || fields.host === '') throw invalidSecret();
  const port = fields.port === undefined ? DEFAULT_REDIS_PORT : Number(fields.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidSecret();
  const tls = fields.tls === true || fields.tls === 'true';
  const user = typeof fields.username === 'string' ? encodeURIComponent(fields.username) : '';
  const password = typeof fields.password === 'string' ? encodeURIComponent(fields.password) : '';
  const credentials = password === '' ? (user === '' ? '' : `${user}@`) : `${user}:${password}@`;
  return `${tls ? 'rediss' : 'redis'}://${credentials}${fields.host}:${port}`;
}

/** Resolves the endpoint; `refresh` reads the secret again (a rotated password, a Redis that moved). */
export async function resolveRedisEndpoint({ refresh = false, whileWaiting }: SecretReadOptions = {}): Promise<RedisEndpoint> {
  const { redis } = config();
  if (redis.url !== undefined) return allowedInStage({ url: redis.url, source: 'env' });
  if (redis.secretId === undefined) throw new ConfigError('REDIS_URL or REDIS_SECRET_ID: one of them must be set');
  const text = await getSecret(redis.secretId, { refresh, whileWaiting });
  try {
    return allowedInStage({ url: redisUrlFromSecret(text), source: 'secret' });
  } catch (error) {
    // A secret refused here is not kept, as a failed read is not: correcting it is enough for the
    // next request to read it again, rather than every request failing until a new container.
    forgetSecret(redis.secretId);
    throw error;
  }
}

/** `endpoint`, unless it is plain text and the stage is prod. */
function allowedInStage(endpoint: RedisEndpoint): RedisEndpoint {
  const { redis, stage } = config();
  if (stage === 'prod' && endpoint.url.startsWith('redis://') && !redis.allowPlaintextInProd) {
    throw new ConfigError(
      'REDIS_URL: the prod stage needs a rediss:// (TLS) URL; set REDIS_ALLOW_PLAINTEXT=true to allow plain text on purpose',
    );
  }
  return endpoint;
}

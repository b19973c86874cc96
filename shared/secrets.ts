// Secrets Manager reads, cached for the life of the container. Failures are never cached, so a
// Secrets Manager outage at cold start costs one request, not the container; nor is a value its
// reader could not use (`forgetSecret`), so correcting the secret is enough.
//
// With credentials in the environment (every Lambda) the read is one signed HTTPS request
// (aws/secrets-manager.ts): loading the AWS SDK's client would cost the first request of each
// container about 100 ms of module loading. Any other credential source (a profile, SSO,
// container credentials) goes through the SDK, loaded on first use.

import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ATTEMPTS, CONNECT_TIMEOUT_MS, directAccess, getSecretValue, RESPONSE_TIMEOUT_MS } from './aws/secrets-manager.ts';
import { HttpProblem } from './problem.ts';

let client: Promise<SecretsManagerClient> | undefined;
const cache = new Map<string, Promise<string>>();

function secretsClient(): Promise<SecretsManagerClient> {
  // Imported on first use: a container that gets REDIS_URL never loads the SDK.
  client ??= import('@aws-sdk/client-secrets-manager').then(
    ({ SecretsManagerClient }) =>
      new SecretsManagerClient({
        // A Lambda must answer in about a second when Secrets Manager is unreachable.
        maxAttempts: ATTEMPTS,
        requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: RESPONSE_TIMEOUT_MS },
      }),
  );
  return client;
}

async function readWithSdk(secretId: string): Promise<string | undefined> {
  const { GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const sm = await secretsClient();
  const result = await sm.send(new GetSecretValueCommand({ SecretId: secretId }));
  return result.SecretString ?? (result.SecretBinary ? Buffer.from(result.SecretBinary).toString('utf8') : undefined);
}

/** Why a secret could not be read: the AWS error's name (`AccessDeniedException`, `TimeoutError`…), or none: no value. */
export class SecretReadFailure extends Error {
  readonly awsError: string | undefined;
  /** The SDK's own words, which tell apart failures of one name (no credentials at all, or an expired sign-in). */
  readonly awsMessage: string | undefined;
  constructor(awsError: string | undefined, awsMessage?: string) {
    super(awsError === undefined ? 'the secret has no string value' : `GetSecretValue failed (${awsError})`);
    this.name = 'SecretReadFailure';
    this.awsError = awsError;
    this.awsMessage = awsMessage;
  }
}

function secretsUnavailable(failure: SecretReadFailure): HttpProblem {
  return new HttpProblem(503, 'secrets-unavailable', {
    detail: 'The service configuration could not be read; try again shortly.',
    retryAfterSeconds: 1,
    cause: failure,
  });
}

async function fetchSecret(secretId: string, whileWaiting: (() => void) | undefined): Promise<string> {
  const access = directAccess();
  let value: string | undefined;
  try {
    value = access === undefined ? await readWithSdk(secretId) : await getSecretValue(secretId, access, whileWaiting);
  } catch (error) {
    const { name, message } = error as { name?: string; message?: string };
    throw secretsUnavailable(new SecretReadFailure(name ?? 'Error', message));
  }
  if (value === undefined || value.trim() === '') throw secretsUnavailable(new SecretReadFailure(undefined));
  return value;
}

export interface SecretReadOptions {
  /** Read the secret again (rotation) instead of the container's copy. */
  refresh?: boolean;
  /**
   * Work for the time the request is on the network: called when the signed request has been
   * sent, before its answer is read (not on the SDK's route, nor when the container's copy is used).
   */
  whileWaiting?: () => void;
}

/** The secret's string, fetched once per container. */
export function getSecret(secretId: string, { refresh = false, whileWaiting }: SecretReadOptions = {}): Promise<string> {
  const existing = cache.get(secretId);
  if (existing && !refresh) return existing;
  const pending = fetchSecret(secretId, whileWaiting);
  cache.set(secretId, pending);
  pending.catch(() => {
    if (cache.get(secretId) === pending) cache.delete(secretId);
  });
  return pending;
}

/**
 * Forget the container's copy of a secret whose value could not be used (a malformed URL): the
 * next read fetches it again, so that correcting the secret is enough, as for a failed read.
 */
export function forgetSecret(secretId: string): void {
  cache.delete(secretId);
}

/** Forget every cached secret (tests). */
export function resetSecrets(): void {
  cache.clear();
  client = undefined;
}

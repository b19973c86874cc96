// GetSecretValue as one signed HTTPS request (AWS JSON 1.1 protocol), for containers whose
// credentials are in the environment: every Lambda (its role's keys and session token), and
// anything started with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. It behaves like the SDK
// client it stands in for (the same ATTEMPTS, CONNECT_TIMEOUT_MS and RESPONSE_TIMEOUT_MS) at a
// fraction of its cold start. Other credential sources (profiles, SSO, container credentials)
// and endpoint variants (FIPS, dual-stack) are left to the SDK: see secrets.ts.

import { Http1Error, http1Request } from './http1.ts';
import { signRequest, type AwsCredentials } from './sigv4.ts';

// GetSecretValue answers in tens of milliseconds in-region; a cold start that cannot read the secret
// must still answer its 503 in about a second: two attempts of at most 0.8 s of waiting each.
// The SDK client of secrets.ts uses the same three limits.
export const CONNECT_TIMEOUT_MS = 300;
export const RESPONSE_TIMEOUT_MS = 500;
export const ATTEMPTS = 2;
/** Error codes worth a second attempt, besides 5xx and network failures. */
const THROTTLING = new Set(['ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'Throttling']);

export interface DirectAccess {
  credentials: AwsCredentials;
  region: string;
  endpoint: URL;
}

/** A failed call, named like the SDK names its errors (`AccessDeniedException`, `TimeoutError`, …). */
class SecretsManagerError extends Error {
  override readonly name: string;
  readonly retryable: boolean;
  constructor(name: string, retryable: boolean) {
    super(`GetSecretValue failed (${name})`);
    this.name = name;
    this.retryable = retryable;
  }
}

type Env = Record<string, string | undefined>;

/** How to call Secrets Manager without the SDK, or undefined when only the SDK can (no keys in the environment). */
export function directAccess(env: Env = process.env): DirectAccess | undefined {
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  const region = env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'];
  if (!accessKeyId || !secretAccessKey || !region) return undefined;
  if (env['AWS_USE_FIPS_ENDPOINT'] === 'true' || env['AWS_USE_DUALSTACK_ENDPOINT'] === 'true') return undefined;
  const configured = env['AWS_ENDPOINT_URL_SECRETS_MANAGER'] ?? env['AWS_ENDPOINT_URL'];
  const domain = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  let endpoint: URL;
  try {
    endpoint = new URL(configured ?? `https://secretsmanager.${region}.${domain}`);
  } catch {
    return undefined; // the SDK reports a malformed endpoint in its own words
  }
  return { credentials: { accessKeyId, secretAccessKey, sessionToken: env['AWS_SESSION_TOKEN'] }, region, endpoint };
}

/**
 * The secret's current value (SecretString, or SecretBinary as UTF-8), undefined when it has neither.
 * `whileWaiting` is called when a request has been sent, before its answer is read.
 */
export async function getSecretValue(secretId: string, access: DirectAccess, whileWaiting?: () => void): Promise<string | undefined> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await attemptOnce(secretId, access, whileWaiting);
    } catch (error) {
      const failure = error instanceof SecretsManagerError ? error : networkError(error);
      if (attempt >= ATTEMPTS || !failure.retryable) throw failure;
      // A little jitter, as the SDK's standard retry mode does, so that a fleet does not retry in step.
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
    }
  }
}

/** No answer: named by the socket's code (`ECONNREFUSED`, `TimeoutError`, …). */
function networkError(error: unknown): SecretsManagerError {
  return new SecretsManagerError(error instanceof Http1Error ? error.code : 'NetworkingError', true);
}

async function attemptOnce(secretId: string, { credentials, region, endpoint }: DirectAccess, whileWaiting?: () => void): Promise<string | undefined> {
  const body = JSON.stringify({ SecretId: secretId });
  const headers = signRequest({
    method: 'POST',
    host: endpoint.host,
    path: endpoint.pathname || '/',
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.GetSecretValue' },
    body,
    region,
    service: 'secretsmanager',
    credentials,
  });
  const response = await http1Request({
    url: endpoint,
    method: 'POST',
    headers,
    body,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    idleTimeoutMs: RESPONSE_TIMEOUT_MS,
    onSent: whileWaiting,
  });
  if (response.status !== 200) throw errorOf(response.status, response.body, response.headers.get('x-amzn-errortype'));
  const parsed = JSON.parse(response.body) as { SecretString?: string; SecretBinary?: string };
  if (typeof parsed.SecretString === 'string') return parsed.SecretString;
  // JSON 1.1 carries blobs as base64.
  if (typeof parsed.SecretBinary === 'string') return Buffer.from(parsed.SecretBinary, 'base64').toString('utf8');
  return undefined;
}

function errorOf(status: number, body: string, errorType: string | undefined): SecretsManagerError {
  let type = errorType;
  try {
    type ??= (JSON.parse(body) as { __type?: string }).__type;
  } catch {
    // not JSON: a proxy's page; named by the status below
  }
  // `com.amazonaws.secretsmanager#AccessDeniedException:http://...` → `AccessDeniedException`
  const name = type?.split('#').pop()?.split(':')[0] || `HttpStatus${status}`;
  return new SecretsManagerError(name, status >= 500 || status === 429 || THROTTLING.has(name));
}

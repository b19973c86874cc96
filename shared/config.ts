// The one configuration loader: reads the environment once, validates every variable and
// fails with a message that names the variable and the form it expects. What the Lambda runtime
// itself sets (AWS credentials and region, the function's name and version) is not configuration
// and is read where it is used (shared/aws/secrets-manager.ts, shared/telemetry/export.ts).

import packageJson from '../package.json' with { type: 'json' };
import { ConfigError } from './config-error.ts';
import { checkRedisCredentials, isRedisUrl, REDIS_URL_FORM } from './redis-url.ts';

export type Stage = 'dev' | 'prod';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type ChatProviderName = 'anthropic' | 'local';
export type CacheScope = 'user' | 'global';
export type FailureMode = 'open' | 'closed';

/** One rate-limit policy: `limit` units per `windowMs`, e.g. `20/60s`. */
export interface RateLimitPolicy {
  name: string;
  limit: number;
  windowMs: number;
}

export interface RouteRateLimit {
  policies: RateLimitPolicy[];
  /** What to do when Redis cannot answer the check in time. */
  onRedisDown: FailureMode;
}

export interface Config {
  stage: Stage;
  version: string;
  logLevel: LogLevel;
  redis: {
    /** Explicit URL (local development, tests); wins over the secret. */
    url: string | undefined;
    secretId: string | undefined;
    cluster: boolean;
    /** PEM file of a private CA to trust for rediss:// (self-hosted Redis with its own CA). */
    tlsCaFile: string | undefined;
    /** Allows a plain-text `redis://` URL in prod; off unless explicitly set. */
    allowPlaintextInProd: boolean;
    connectTimeoutMs: number;
    commandTimeoutMs: number;
  };
  cacheTtlSeconds: number;
  http: {
    maxBodyBytes: number;
  };
  rateLimits: {
    chat: RouteRateLimit;
    embeddings: RouteRateLimit;
    login: RouteRateLimit;
    /** Failed logins of one account (email), whatever the client address. */
    loginAccount: RouteRateLimit;
    /**
     * Registrations refused because the email is taken, per client address (enumeration). No
     * fail-open setting: a registration cannot be made without Redis anyway.
     */
    register: Pick<RouteRateLimit, 'policies'>;
  };
  auth: {
    registrationOpen: boolean;
    sessionIdleSeconds: number;
    sessionMaxSeconds: number;
    /** scrypt cost of new password hashes as log2(N): 17 in production, lower only to speed up tests. */
    passwordScryptLog2N: number;
  };
  chat: ChatConfig;
  embeddings: EmbeddingsConfig;
  otlpEndpoint: string | undefined;
  /** How metrics reach `otlpEndpoint` (the OpenTelemetry SDK's own variables). */
  otlp: {
    /** `OTEL_EXPORTER_OTLP_HEADERS`, e.g. the collector's `Authorization`; never logged. */
    headers: Record<string, string>;
    timeoutMs: number;
    serviceName: string;
  };
}

/** Who answers: Claude, with the credentials and endpoint it needs, or the offline tutor. */
export type ChatProviderSettings =
  | {
      provider: 'anthropic';
      /** Claude's credentials and endpoint (the Anthropic SDK's own variables). */
      anthropicApiKey: string;
      anthropicBaseUrl: string;
    }
  | { provider: 'local' };

export type ChatConfig = ChatProviderSettings & {
  models: string[];
  defaultModel: string;
  systemPrompt: string | undefined;
  systemPromptFile: string | undefined;
  cacheScope: CacheScope;
  /** Serve uncached answers (no single-flight, no cache) when Redis is down, instead of a 503. */
  degradeWhenRedisDown: boolean;
  timeoutMs: number;
};

/** Who embeds: an OpenAI-compatible API at its base URL, or the offline embedder. */
export type EmbeddingsProviderSettings = { provider: 'openai'; baseUrl: string; apiKey: string | undefined } | { provider: 'local' };

export type EmbeddingsConfig = EmbeddingsProviderSettings & {
  model: string;
  dimensions: number;
  timeoutMs: number;
  /** `user` (default): each user's vectors are theirs; `global`: shared by every user. */
  cacheScope: CacheScope;
};

export { ConfigError };

type Env = Record<string, string | undefined>;

/**
 * What Lambda accepts as a synchronous request (6 MiB), counted on the whole event: a larger body
 * never reaches a function. (Answers have their own bound: MAX_ANSWER_BODY_BYTES in embeddings.ts.)
 */
const LAMBDA_REQUEST_BYTES = 6 * 1024 * 1024;

const STAGE_DEFAULTS: Record<Stage, { cacheTtlSeconds: number }> = {
  dev: { cacheTtlSeconds: 3600 },
  prod: { cacheTtlSeconds: 21600 },
};

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function fail(variable: string, expected: string, got: string): never {
  // The value is echoed only for variables that never hold secrets (callers below; URLs are not).
  throw new ConfigError(`${variable}: expected ${expected}, got "${got}"`);
}

function readString(env: Env, variable: string): string | undefined {
  const raw = env[variable]?.trim();
  return raw === undefined || raw === '' ? undefined : raw;
}

function readEnum<T extends string>(env: Env, variable: string, allowed: readonly T[], fallback: T): T {
  const raw = readString(env, variable);
  if (raw === undefined) return fallback;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  return fail(variable, `one of ${allowed.join(', ')}`, raw);
}

function readBoolean(env: Env, variable: string, fallback: boolean): boolean {
  const raw = readString(env, variable);
  if (raw === undefined) return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  return fail(variable, 'true or false', raw);
}

function readInteger(env: Env, variable: string, fallback: number, min: number, max: number): number {
  const raw = readString(env, variable);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    return fail(variable, `a whole number from ${min} to ${max}`, raw);
  }
  return value;
}

function readUrl(env: Env, variable: string): string | undefined {
  const raw = readString(env, variable);
  if (raw === undefined) return undefined;
  // Not echoed: a URL may carry credentials (`user:password@`, `?token=`).
  if (!/^https?:\/\/[^\s]+$/.test(raw)) throw new ConfigError(`${variable}: expected an http:// or https:// URL`);
  return raw.replace(/\/+$/, '');
}

/** `key1=value1,key2=value2` with URL-encoded values (the OpenTelemetry form); values may be secrets. */
function readHeaders(env: Env, variable: string): Record<string, string> {
  const raw = readString(env, variable);
  const headers: Record<string, string> = {};
  if (raw === undefined) return headers;
  for (const pair of raw.split(',')) {
    const at = pair.indexOf('=');
    const name = pair.slice(0, at).trim();
    let value: string | undefined;
    try {
      value = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      value = undefined;
    }
    if (at <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || value === undefined) {
      throw new ConfigError(`${variable}: expected name=value pairs separated by commas, values URL-encoded`);
    }
    headers[name] = value;
  }
  return headers;
}

function readList(env: Env, variable: string): string[] | undefined {
  const raw = readString(env, variable);
  if (raw === undefined) return undefined;
  return raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
}

/** `60s`, `1m`, `500ms`, `1d` → milliseconds; undefined when the text is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2] as keyof typeof DURATION_UNITS_MS;
  const ms = amount * DURATION_UNITS_MS[unit];
  return ms > 0 ? ms : undefined;
}

const POLICY_FORM = '<count>/<window> such as 20/60s or 20/1m,500/1d (window units: ms, s, m, h, d)';

function readPolicies(env: Env, variable: string, fallback: string): RateLimitPolicy[] {
  const raw = readString(env, variable) ?? fallback;
  const parts = raw.split(',').map((part) => part.trim());
  return parts.map((part) => {
    const [count, window, extra] = part.split('/');
    const limit = Number(count);
    const windowMs = window === undefined ? undefined : parseDurationMs(window);
    if (extra !== undefined || !/^\d+$/.test(count ?? '') || limit < 1 || windowMs === undefined) {
      return fail(variable, POLICY_FORM, raw);
    }
    return { name: `${limit}-per-${window}`, limit, windowMs };
  });
}

function readRouteLimit(env: Env, route: string, fallback: string, fallbackMode: FailureMode): RouteRateLimit {
  return {
    policies: readPolicies(env, `RATE_LIMIT_${route}`, fallback),
    onRedisDown: readEnum(env, `RATE_LIMIT_${route}_ON_REDIS_DOWN`, ['open', 'closed'], fallbackMode),
  };
}

const DEFAULT_CHAT_MODELS = ['claude-sonnet-4-5', 'claude-haiku-4-5'];

function readRedis(env: Env): Config['redis'] {
  const url = readString(env, 'REDIS_URL');
  // Never echo the URL: it may hold a password.
  if (url !== undefined && !isRedisUrl(url)) throw new ConfigError(`REDIS_URL: expected ${REDIS_URL_FORM}`);
  if (url !== undefined) checkRedisCredentials(url, 'REDIS_URL');
  return {
    url,
    secretId: readString(env, 'REDIS_SECRET_ID'),
    cluster: readBoolean(env, 'REDIS_CLUSTER', false),
    tlsCaFile: readString(env, 'REDIS_TLS_CA_FILE'),
    allowPlaintextInProd: readBoolean(env, 'REDIS_ALLOW_PLAINTEXT', false),
    connectTimeoutMs: readInteger(env, 'REDIS_CONNECT_TIMEOUT_MS', 800, 50, 10_000),
    commandTimeoutMs: readInteger(env, 'REDIS_COMMAND_TIMEOUT_MS', 800, 50, 10_000),
  };
}

function readRateLimits(env: Env): Config['rateLimits'] {
  const login = readRouteLimit(env, 'LOGIN', '10/15m', 'closed');
  return {
    chat: readRouteLimit(env, 'CHAT', '20/1m,500/1d', 'closed'),
    embeddings: readRouteLimit(env, 'EMBEDDINGS', '2000/1m', 'closed'),
    login,
    loginAccount: readRouteLimit(env, 'LOGIN_ACCOUNT', '5/15m', login.onRedisDown),
    register: { policies: readPolicies(env, 'RATE_LIMIT_REGISTER', '10/15m') },
  };
}

/** The scrypt costs `PASSWORD_SCRYPT_LOG2N` may name (a derivation needs 128·2^N·8 bytes: 1 GiB at the top). */
export const PASSWORD_SCRYPT_LOG2N = { min: 14, max: 20 };

function readAuth(env: Env): Config['auth'] {
  const sessionIdleSeconds = readInteger(env, 'SESSION_IDLE_SECONDS', 7 * 86_400, 1, 365 * 86_400);
  const sessionMaxSeconds = readInteger(env, 'SESSION_MAX_SECONDS', 30 * 86_400, 1, 365 * 86_400);
  if (sessionMaxSeconds < sessionIdleSeconds) {
    return fail('SESSION_MAX_SECONDS', `at least SESSION_IDLE_SECONDS (${sessionIdleSeconds})`, String(sessionMaxSeconds));
  }
  return {
    registrationOpen: readBoolean(env, 'AUTH_REGISTRATION_OPEN', true),
    sessionIdleSeconds,
    sessionMaxSeconds,
    passwordScryptLog2N: readInteger(env, 'PASSWORD_SCRYPT_LOG2N', 17, PASSWORD_SCRYPT_LOG2N.min, PASSWORD_SCRYPT_LOG2N.max),
  };
}

function readChatProvider(env: Env): ChatProviderSettings {
  const apiKey = readString(env, 'ANTHROPIC_API_KEY');
  const baseUrl = readUrl(env, 'ANTHROPIC_BASE_URL') ?? 'https://api.anthropic.com';
  const provider = readEnum(env, 'CHAT_PROVIDER', ['anthropic', 'local'], apiKey === undefined ? 'local' : 'anthropic');
  if (provider === 'local') return { provider };
  if (apiKey === undefined) return fail('ANTHROPIC_API_KEY', 'an Anthropic API key when CHAT_PROVIDER=anthropic', '');
  return { provider, anthropicApiKey: apiKey, anthropicBaseUrl: baseUrl };
}

function readChat(env: Env): ChatConfig {
  const models = readList(env, 'CHAT_MODELS') ?? DEFAULT_CHAT_MODELS;
  const defaultModel = readString(env, 'CHAT_DEFAULT_MODEL') ?? models[0];
  if (models.length === 0 || defaultModel === undefined) {
    return fail('CHAT_MODELS', 'a comma-separated list of at least one model', env['CHAT_MODELS'] ?? '');
  }
  if (!models.includes(defaultModel)) {
    return fail('CHAT_DEFAULT_MODEL', `one of CHAT_MODELS (${models.join(', ')})`, defaultModel);
  }
  return {
    ...readChatProvider(env),
    models,
    defaultModel,
    systemPrompt: readString(env, 'CHAT_SYSTEM_PROMPT'),
    systemPromptFile: readString(env, 'CHAT_SYSTEM_PROMPT_FILE'),
    cacheScope: readEnum(env, 'CHAT_CACHE_SCOPE', ['user', 'global'], 'user'),
    degradeWhenRedisDown: readBoolean(env, 'CHAT_DEGRADE_WHEN_REDIS_DOWN', false),
    timeoutMs: readInteger(env, 'CHAT_TIMEOUT_MS', 25_000, 100, 900_000),
  };
}

function readEmbeddingsProvider(env: Env): EmbeddingsProviderSettings {
  const provider = readEnum(env, 'EMBEDDINGS_PROVIDER', ['local', 'openai'], 'local');
  const baseUrl = readUrl(env, 'EMBEDDINGS_BASE_URL');
  if (provider === 'local') return { provider };
  if (baseUrl === undefined) {
    return fail('EMBEDDINGS_BASE_URL', 'the base URL of an OpenAI-compatible embeddings API when EMBEDDINGS_PROVIDER=openai', '');
  }
  return { provider, baseUrl, apiKey: readString(env, 'EMBEDDINGS_API_KEY') };
}

function readEmbeddings(env: Env): EmbeddingsConfig {
  const settings = readEmbeddingsProvider(env);
  return {
    ...settings,
    model: readString(env, 'EMBEDDINGS_MODEL') ?? (settings.provider === 'local' ? 'local-hash-384' : 'text-embedding-3-small'),
    dimensions: readInteger(env, 'EMBEDDINGS_DIMENSIONS', 384, 8, 8192),
    timeoutMs: readInteger(env, 'EMBEDDINGS_TIMEOUT_MS', 8_000, 100, 900_000),
    cacheScope: readEnum(env, 'EMBEDDINGS_CACHE_SCOPE', ['user', 'global'], 'user'),
  };
}

export function loadConfig(env: Env = process.env): Config {
  const stage = readEnum(env, 'STAGE', ['dev', 'prod'], 'dev');
  return {
    stage,
    version: packageJson.version,
    logLevel: readEnum(env, 'LOG_LEVEL', ['debug', 'info', 'warn', 'error'], 'info'),
    redis: readRedis(env),
    cacheTtlSeconds: readInteger(env, 'CACHE_TTL_SECONDS', STAGE_DEFAULTS[stage].cacheTtlSeconds, 1, 30 * 86_400),
    http: {
      // Default: Lambda's own limit for a request (6 MB), which no function can raise. Every
      // request within the contract's bounds fits when its text is ASCII (50 messages of 32,000
      // characters: 1.6 MB; 256 inputs of 8,192: 2.1 MB); the largest, in three-byte characters, may not.
      maxBodyBytes: readInteger(env, 'MAX_BODY_BYTES', LAMBDA_REQUEST_BYTES, 1024, LAMBDA_REQUEST_BYTES),
    },
    rateLimits: readRateLimits(env),
    auth: readAuth(env),
    chat: readChat(env),
    embeddings: readEmbeddings(env),
    otlpEndpoint: readUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'),
    otlp: {
      headers: readHeaders(env, 'OTEL_EXPORTER_OTLP_HEADERS'),
      // Not the SDK's 10 s: the export delays the response of the invocation that flushes it.
      timeoutMs: readInteger(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', 1000, 50, 60_000),
      serviceName: readString(env, 'OTEL_SERVICE_NAME') ?? 'tutor-copiloto',
    },
  };
}

let cached: Config | undefined;

/** The configuration of this container, read on first use and kept. */
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}

/** Forget the kept configuration (tests change the environment between cases). */
export function resetConfig(): void {
  cached = undefined;
}

/**
 * What `make` builds from the configuration, built on first use and again only when the
 * configuration is read anew (tests): for what costs something to build, or registers a secret.
 */
export function perConfiguration<T>(make: (settings: Config) => T): () => T {
  let made: { settings: Config; value: T } | undefined;
  return () => {
    const settings = config();
    if (made?.settings !== settings) made = { settings, value: make(settings) };
    return made.value;
  };
}

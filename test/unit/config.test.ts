// Configuration loading: stage defaults and overrides, rate-limit policies, durations, and errors
// that name the variable and the expected form without echoing a REDIS_URL.

import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDurationMs } from '../../shared/config.ts';

describe('configuration', () => {
  it('uses a one-hour cache TTL in dev and six hours in prod', () => {
    expect(loadConfig({ STAGE: 'dev' }).cacheTtlSeconds).toBe(3600);
    expect(loadConfig({ STAGE: 'prod' }).cacheTtlSeconds).toBe(21600);
  });

  it('lets CACHE_TTL_SECONDS override the stage default', () => {
    expect(loadConfig({ STAGE: 'prod', CACHE_TTL_SECONDS: '90' }).cacheTtlSeconds).toBe(90);
  });

  it('parses a rate limit with several policies', () => {
    const { rateLimits } = loadConfig({ RATE_LIMIT_CHAT: '20/60s, 500/1d' });

    expect(rateLimits.chat.policies).toEqual([
      { name: '20-per-60s', limit: 20, windowMs: 60_000 },
      { name: '500-per-1d', limit: 500, windowMs: 86_400_000 },
    ]);
  });

  it('names the variable and the expected form when a rate limit is malformed', () => {
    expect(() => loadConfig({ RATE_LIMIT_CHAT: 'abc' })).toThrow(ConfigError);
    expect(() => loadConfig({ RATE_LIMIT_CHAT: 'abc' })).toThrow(/RATE_LIMIT_CHAT: expected <count>\/<window> such as 20\/60s/);
  });

  it.each([
    ['STAGE', 'staging', /STAGE: expected one of dev, prod/],
    ['CACHE_TTL_SECONDS', '-5', /CACHE_TTL_SECONDS: expected a whole number/],
    ['REDIS_CLUSTER', 'yes', /REDIS_CLUSTER: expected true or false/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL: expected one of debug, info, warn, error/],
    ['RATE_LIMIT_LOGIN', '10/15x', /RATE_LIMIT_LOGIN: expected <count>\/<window>/],
    ['CHAT_PROVIDER', 'gpt', /CHAT_PROVIDER: expected one of anthropic, local/],
    ['EMBEDDINGS_BASE_URL', 'api.openai.com/v1', /EMBEDDINGS_BASE_URL: expected an http:\/\/ or https:\/\/ URL/],
    ['EMBEDDINGS_CACHE_SCOPE', 'team', /EMBEDDINGS_CACHE_SCOPE: expected one of user, global/],
    ['RATE_LIMIT_LOGIN_ACCOUNT_ON_REDIS_DOWN', 'maybe', /RATE_LIMIT_LOGIN_ACCOUNT_ON_REDIS_DOWN: expected one of open, closed/],
    ['RATE_LIMIT_REGISTER', '0/1m', /RATE_LIMIT_REGISTER: expected <count>\/<window>/],
  ])('rejects %s=%s with a message naming it', (variable, value, message) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(message);
  });

  it.each([
    ['a port past 65535', 'redis://127.0.0.1:99999'],
    ['a password with an unencoded #', 'rediss://:secret#part@cache.example.test:6380'],
  ])('rejects a REDIS_URL with %s, saying what to percent-encode, without echoing it', (_, url) => {
    const attempt = () => loadConfig({ REDIS_URL: url });

    expect(attempt).toThrow(/REDIS_URL: expected .* port up to 65535 \(in a password, @ : \/ \? # % must be percent-encoded\)/);
    expect(attempt).not.toThrow(/secret/);
  });

  it.each([
    ['a path that is not a database number', 'redis://127.0.0.1:6379/cache'],
    ['an unencoded / in a password, which moves part of it into the host name', 'redis://default:xx@TopSecret42/yy@127.0.0.1:6379'],
  ])('rejects a REDIS_URL with %s', (_, url) => {
    const attempt = () => loadConfig({ REDIS_URL: url });

    expect(attempt).toThrow(/REDIS_URL: expected .* a database number as its only path if any/);
    expect(attempt).not.toThrow(/TopSecret/);
  });

  it('accepts a REDIS_URL naming a database', () => {
    expect(loadConfig({ REDIS_URL: 'rediss://:pw@cache.example.test:6380/3' }).redis.url).toBe('rediss://:pw@cache.example.test:6380/3');
  });

  it('rejects a REDIS_URL that is not a Redis URL without echoing it', () => {
    const attempt = () => loadConfig({ REDIS_URL: 'http://user:hunter2hunter2@example.com' });

    expect(attempt).toThrow(/REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(attempt).not.toThrow(/hunter2/);
  });

  it('rejects a REDIS_URL whose password holds a raw %, saying to write it %25, without echoing the password', () => {
    const attempt = () => loadConfig({ REDIS_URL: 'redis://default:Sec%ret123abc@127.0.0.1:6594' });

    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow('REDIS_URL: a % in the user name or password begins no percent-encoded character: write % as %25');
    expect(attempt).not.toThrow(/Sec%ret123abc|ret123abc/);
  });

  it('accepts a REDIS_URL whose password holds a percent-encoded %', () => {
    expect(loadConfig({ REDIS_URL: 'redis://default:Sec%25ret123abc@127.0.0.1:6594' }).redis.url).toBe('redis://default:Sec%25ret123abc@127.0.0.1:6594');
  });

  it.each(['ANTHROPIC_BASE_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT'])('rejects a %s that is not an http(s) URL without echoing it', (variable) => {
    const attempt = () => loadConfig({ [variable]: 'htps://user:hunter2hunter2@api.example.test' });

    expect(attempt).toThrow(new RegExp(`${variable}: expected an http:// or https:// URL`));
    expect(attempt).not.toThrow(/hunter2/);
  });

  it('chooses the anthropic provider only when an API key is set', () => {
    expect(loadConfig({}).chat.provider).toBe('local');
    expect(loadConfig({ ANTHROPIC_API_KEY: 'sk-test-key' }).chat.provider).toBe('anthropic');
  });

  it('reads durations in milliseconds, seconds, minutes, hours and days', () => {
    expect([parseDurationMs('500ms'), parseDurationMs('60s'), parseDurationMs('1m'), parseDurationMs('2h'), parseDurationMs('1d')]).toEqual([
      500, 60_000, 60_000, 7_200_000, 86_400_000,
    ]);
    expect(parseDurationMs('0s')).toBeUndefined();
    expect(parseDurationMs('1w')).toBeUndefined();
  });
});

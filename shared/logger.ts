// Structured JSON logs: one line per event, with the request id of the invocation that wrote it,
// and a scrubber that keeps every registered secret (Redis password, API keys, tokens) out.

import { AsyncLocalStorage } from 'node:async_hooks';
import { config, type LogLevel } from './config.ts';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogContext {
  requestId?: string;
  route?: string;
  /** Facts learnt during the request (e.g. `cache: 'HIT'`), see `annotateRequest`. */
  [field: string]: unknown;
}

const context = new AsyncLocalStorage<LogContext>();
const secrets = new Set<string>();

/** Runs `fn` with `fields` attached to every log line it writes. */
export function withLogContext<T>(fields: LogContext, fn: () => T): T {
  return context.run({ ...context.getStore(), ...fields }, fn);
}

/**
 * Runs `fn` outside any request's context. What it sets up outlives the request that happened to
 * create it (the container's Redis connection): its later events are logged without that
 * request's id, which would send whoever traces them to the wrong request.
 */
export function outsideRequests<T>(fn: () => T): T {
  return context.exit(fn);
}

/** The current request's log context (to log for it later, from elsewhere: `inLogContext`). */
export function currentLogContext(): LogContext | undefined {
  return context.getStore();
}

/** Runs `fn` in a context returned by `currentLogContext` (outside any request when undefined). */
export function inLogContext<T>(store: LogContext | undefined, fn: () => T): T {
  return store === undefined ? context.exit(fn) : context.run(store, fn);
}

/**
 * Adds `fields` to every later log line of the current request, its final `request` line
 * included (e.g. the cache outcome). Outside a request it does nothing.
 */
export function annotateRequest(fields: Record<string, unknown>): void {
  const store = context.getStore();
  if (store !== undefined) Object.assign(store, fields);
}

/**
 * Remembers a value that must never be written out: every log line is scrubbed of it, and so is
 * whatever `scrub()` is given (the operator tools' output).
 */
export function registerSecret(value: string | undefined): void {
  // Short values would scrub ordinary words; nothing secret is that short.
  if (value === undefined || value.length < 6) return;
  secrets.add(value);
  // A log line is scrubbed once serialised, where a quote, backslash or control character of the
  // secret appears escaped: that spelling is searched for too.
  secrets.add(JSON.stringify(value).slice(1, -1));
}

/** At most `maxChars` of `text`, scrubbed before it is cut so that no part of a secret survives the cut. */
export function scrubbedExcerpt(text: string, maxChars: number): string {
  return scrub(text).slice(0, maxChars);
}

/**
 * A URL's password runs to the last `@` before its host, as a URL parser reads it (`p@ss` in
 * `rediss://u:p@ss@host`), not to the first: that would leave the rest of it in the line. The
 * lookahead ends the URL at a path, query, fragment, blank or quote, so an address further on
 * in the line (`"email":"ada@example.org"`) is not taken for the host. A user name alone, without
 * a colon (`redis://<secret>@host`, how redis-cli users write a password), is masked whole: `$2`,
 * the user name before a password, is then empty.
 */
const URL_CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/)(?:([^:/@\s]*:)[^\s]+?|[^:/?#\s"']+?)@(?![^\s/?#"'@]*@)/gi;
const BEARER = /(bearer\s+)[A-Za-z0-9._~+/=-]+/gi;

/** The text with URL passwords (and lone user names), bearer tokens and every registered secret replaced by `***`. */
export function scrub(text: string): string {
  // Registered secrets first: a pattern below that matched part of one (a password holding an
  // `@`, cut at it) would leave the text no longer holding the whole secret to be found.
  let clean = text;
  for (const secret of secrets) clean = clean.split(secret).join('***');
  // URL_CREDENTIALS needs a `://`: a line without one (most) skips its scan.
  return (clean.includes('://') ? clean.replace(URL_CREDENTIALS, '$1$2***@') : clean).replace(BEARER, '$1***');
}

/**
 * An error's name, message and code, and those of what caused it, two levels deep: ioredis's
 * ClusterAllFailedError says only "Failed to refresh slots cache.", its last node's error says why
 * (WRONGPASS, a refused connection).
 */
function describeError(error: Error, depth = 0): Record<string, unknown> {
  const code = (error as { code?: unknown }).code;
  const cause = (error as { lastNodeError?: unknown }).lastNodeError ?? error.cause;
  return {
    name: error.name,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    ...(cause instanceof Error && depth < 2 ? { cause: describeError(cause, depth + 1) } : {}),
  };
}

function errorFields(error: unknown): Record<string, unknown> {
  return { error: error instanceof Error ? describeError(error) : String(error) };
}

function write(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
  let threshold: LogLevel;
  try {
    threshold = config().logLevel;
  } catch {
    threshold = 'info'; // a broken configuration must still be logged
  }
  if (LEVEL_RANK[level] < LEVEL_RANK[threshold]) return;
  let line: string;
  if (!('err' in fields)) {
    // The usual line: the same object as below, without copying `fields` first.
    line = JSON.stringify({ level, time: new Date().toISOString(), message, ...context.getStore(), ...fields });
  } else {
    const { err, ...rest } = fields;
    line = JSON.stringify({
      level,
      time: new Date().toISOString(),
      message,
      ...context.getStore(),
      ...rest,
      ...(err === undefined ? {} : errorFields(err)),
    });
  }
  const out = level === 'error' || level === 'warn' ? process.stderr : process.stdout;
  out.write(`${scrub(line)}\n`);
}

export const log = {
  debug: (message: string, fields?: Record<string, unknown>) => write('debug', message, fields),
  info: (message: string, fields?: Record<string, unknown>) => write('info', message, fields),
  warn: (message: string, fields?: Record<string, unknown>) => write('warn', message, fields),
  error: (message: string, fields?: Record<string, unknown>) => write('error', message, fields),
};

// HTTP basics shared by every route, as one middy middleware: the request id in every log line,
// the JSON body (415 / 400 / 413), problem+json for every error, security headers. (CORS is API
// Gateway's alone: infra/cors.yml.)

import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { config, ConfigError } from './config.ts';
import { log, withLogContext } from './logger.ts';
import { monotonicMs } from './monotonic-clock.ts';
import { HttpProblem, internalProblem, redisUnavailable } from './problem.ts';
import { isRedisUnavailableError } from './redis-errors.ts';
import { assertUniqueKeys, assertWellFormedText } from './validation.ts';
import { flushTelemetry, startTelemetry } from './telemetry/export.ts';
import { telemetryEnabled } from './telemetry/metrics.ts';

export interface HttpEvent extends APIGatewayProxyEventV2 {
  /** The parsed JSON body; `undefined` when the request has none. */
  jsonBody: unknown;
}

export type HttpResult = APIGatewayProxyStructuredResultV2 & { headers: Record<string, string | number | boolean> };

/** On every answer, the local gateway's own (infra/local/gateway.ts) too. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Strict-Transport-Security': 'max-age=63072000; includeSubDomains',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
};

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

/** A JSON response with the given status and headers. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return jsonText(statusCode, JSON.stringify(body), headers);
}

/** A JSON response whose body is serialised already (e.g. to check its size first). */
export function jsonText(statusCode: number, text: string, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'Content-Type': 'application/json; charset=utf-8', ...headers },
    body: text,
  };
}

/** Header lookup that ignores case (API Gateway lower-cases, local tools may not). */
export function header(event: APIGatewayProxyEventV2, name: string): string | undefined {
  const wanted = name.toLowerCase();
  const headers = event.headers;
  if (headers === undefined || headers === null) return undefined;
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === wanted) return headers[key];
  }
  return undefined;
}

/** The body's bytes as sent; undefined when there is none, a 413 above the limit. */
function bodyBytes(event: APIGatewayProxyEventV2, maxBytes: number): Buffer | undefined {
  if (event.body === undefined || event.body === null || event.body === '') return undefined;
  // serverless-offline hands a JSON body of `0` or `false` over as that value, not as its text.
  const body: string = typeof event.body === 'string' ? event.body : JSON.stringify(event.body);
  const bytes = event.isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  if (bytes.length > maxBytes) {
    throw new HttpProblem(413, 'body-too-large', { detail: `The request body exceeds ${maxBytes} bytes.` });
  }
  return bytes;
}

/**
 * A 415 for a body declared in a form other than JSON in UTF-8: a content coding (RFC 9110
 * §15.5.16: the answer names what is accepted), another media type or another charset. Checked
 * before the bytes are read, so that a gzipped body is told what to send rather than "not UTF-8".
 */
function assertJsonForm(event: APIGatewayProxyEventV2): void {
  const encoding = header(event, 'content-encoding')?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
    throw new HttpProblem(415, 'unsupported-content-encoding', {
      detail: 'Send the request body without a content coding (no gzip, br or deflate).',
      headers: { 'Accept-Encoding': 'identity' },
    });
  }
  const [type = '', ...parameters] = (header(event, 'content-type') ?? '').split(';');
  const mediaType = type.trim().toLowerCase();
  const charset = parameters
    .map((parameter) => /^\s*charset\s*=\s*"?([^"\s]*)"?\s*$/i.exec(parameter)?.[1])
    .find((value) => value !== undefined);
  const isJson = mediaType === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(mediaType);
  // US-ASCII is a subset of UTF-8: its bytes decode the same.
  if (!isJson || (charset !== undefined && !/^(utf-?8|us-ascii)$/i.test(charset))) {
    throw new HttpProblem(415, 'unsupported-media-type', {
      detail: 'Send the request body as application/json, in UTF-8.',
      headers: { 'Accept-Post': 'application/json' },
    });
  }
}

/** Not streaming: each decode() starts afresh, so one decoder serves every request. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function utf8Text(bytes: Buffer): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new HttpProblem(400, 'invalid-encoding', { detail: 'The request body is not valid UTF-8.' });
  }
}

const SURROGATE_ESCAPE = /\\u[dD][89abcdefABCDEF]/;

function parseJsonBody(event: APIGatewayProxyEventV2, maxBytes: number): unknown {
  if (!METHODS_WITH_BODY.has(event.requestContext?.http?.method ?? '')) return undefined;
  const bytes = bodyBytes(event, maxBytes);
  if (bytes === undefined) return undefined;
  assertJsonForm(event);
  const text = utf8Text(bytes);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpProblem(400, 'malformed-json', { detail: 'The request body is not valid JSON.' });
  }
  // The text itself is valid UTF-8 (decoded strictly above): a lone surrogate can only come from a
  // \uD800-\uDFFF escape, so the walk through the parsed body runs only when there is one.
  if (SURROGATE_ESCAPE.test(text)) assertWellFormedText(body);
  assertUniqueKeys(text);
  return body;
}

/** The Lambda invocation's id: unique per request, here and in CloudWatch. */
function requestIdOf(event: APIGatewayProxyEventV2, context: Context | undefined): string | undefined {
  return context?.awsRequestId ?? event.requestContext?.requestId;
}

function errorResponse(error: unknown): APIGatewayProxyStructuredResultV2 {
  if (error instanceof HttpProblem) {
    if (error.status >= 500) log.warn('request failed', { status: error.status, type: error.type, err: error.cause });
    return error.toResponse();
  }
  if (isRedisUnavailableError(error)) {
    log.warn('redis unavailable', { err: error });
    return redisUnavailable(error).toResponse();
  }
  if (error instanceof ConfigError) log.error('configuration error', { err: error });
  else log.error('unhandled error', { err: error });
  return internalProblem().toResponse();
}

function decorate(request: { event: APIGatewayProxyEventV2; response: unknown; context: Context }): void {
  const response = (request.response ?? { statusCode: 204 }) as APIGatewayProxyStructuredResultV2;
  const requestId = requestIdOf(request.event, request.context);
  response.headers = {
    ...SECURITY_HEADERS,
    ...(requestId ? { 'X-Request-Id': requestId } : {}),
    ...response.headers,
  };
  request.response = response;
}

/**
 * A HEAD is answered as its GET, without the body (RFC 9110): the headers say what GET would send,
 * its length included (else the server would give the length of the empty body, 0). Done once the
 * whole middleware chain has answered, so that the length counts what every middleware added (the
 * OpenAI error member is added after the problem is built).
 */
function withoutBodyForHead(event: APIGatewayProxyEventV2, result: unknown): void {
  const response = result as APIGatewayProxyStructuredResultV2 | undefined;
  if (event.requestContext?.http?.method !== 'HEAD' || response?.body === undefined) return;
  const length = Buffer.byteLength(response.body, response.isBase64Encoded === true ? 'base64' : 'utf8');
  response.headers = { ...response.headers, 'Content-Length': String(length) };
  delete response.body;
}

export interface HttpBasicsOptions {
  /** Parse the JSON body into `event.jsonBody` (default true). */
  parseBody?: boolean;
  /**
   * A body that cannot be read (400, 413, 415) is refused when `jsonBody` is first read, not at
   * once: on a rate-limited route, auth and the limit run first, so the refusal carries the
   * RateLimit headers and, the route's validation failing, spends nothing. Only for routes whose
   * validation reads the body on every request.
   */
  deferBodyProblems?: boolean;
}

/** A body that cannot be read: `jsonBody` throws its problem to whoever reads it. */
function refuseOnRead(event: HttpEvent, problem: HttpProblem): void {
  Object.defineProperty(event, 'jsonBody', {
    configurable: true,
    get: () => {
      throw problem;
    },
  });
}

/**
 * Must be the first middleware of every HTTP handler: its `onError` runs last, so it turns every
 * error thrown by later middleware or by the handler into a problem response.
 */
export function httpBasics({ parseBody = true, deferBodyProblems = false }: HttpBasicsOptions = {}): MiddlewareObj<HttpEvent, HttpResult> {
  const before: MiddlewareObj<HttpEvent, HttpResult>['before'] = (request) => {
    if (!parseBody) {
      request.event.jsonBody = undefined;
      return;
    }
    try {
      request.event.jsonBody = parseJsonBody(request.event, config().http.maxBodyBytes);
    } catch (error) {
      if (!deferBodyProblems || !(error instanceof HttpProblem)) throw error;
      refuseOnRead(request.event, error);
    }
  };
  const after: MiddlewareObj<HttpEvent, HttpResult>['after'] = (request) => {
    decorate(request);
  };
  const onError: MiddlewareObj<HttpEvent, HttpResult>['onError'] = (request) => {
    request.response = errorResponse(request.error) as HttpResult;
    decorate(request);
  };
  return { name: 'httpBasics', before, after, onError };
}

/**
 * Wraps a handler so that every log line it writes carries the request id and route, exports the
 * invocation's metrics before it returns, and answers a HEAD without its body. Kept outside middy
 * because all three must span the whole middleware chain.
 */
export function withRequestLogging<E extends APIGatewayProxyEventV2, R>(
  route: string,
  handler: (event: E, context: Context) => Promise<R>,
): (event: E, context: Context) => Promise<R> {
  return (event, context) => {
    const requestId = requestIdOf(event, context);
    return withLogContext({ requestId, route }, async () => {
      const started = monotonicMs();
      startTelemetry();
      const result = await handler(event, context);
      withoutBodyForHead(event, result);
      const status = (result as { statusCode?: number } | undefined)?.statusCode;
      log.info('request', { status, durationMs: Math.round(monotonicMs() - started) });
      // Lambda freezes the process once the response is returned. (Without an OTLP endpoint there
      // is nothing to flush: no call, no turn of the event loop.)
      if (telemetryEnabled()) await flushTelemetry();
      return result;
    });
  };
}

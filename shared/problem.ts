// The one error shape: RFC 9457 problem details. Anything that should reach the client as a 4xx
// or 5xx is thrown as an HttpProblem; anything else becomes an opaque 500 in the HTTP middleware.
// What a problem echoes of the client's input goes through `shown`, which cuts it short.

import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

export interface FieldError {
  path: string;
  message: string;
}

export interface ProblemOptions {
  detail?: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
  /** Seconds; sent as `Retry-After` (429, 503). */
  retryAfterSeconds?: number;
  cause?: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The reason phrase of a status, the problem's `title`; `Error` for one this API never answers. */
export function statusTitle(status: number): string {
  return TITLES[status] ?? 'Error';
}

const TYPE_BASE = 'https://tutor-copiloto.dev/problems/';

/** Where a problem shows what the client sent, longer text is cut: an answer never grows with the garbage it is sent. */
const SHOWN_LENGTH = 120;

/** `text`, or its first 119 characters and `…` when it has more than 120. */
export function shown(text: string): string {
  if (text.length <= SHOWN_LENGTH) return text; // code points never exceed code units
  // Counted in code points (an emoji is not cut in half), reading no further than the cut.
  const characters: string[] = [];
  for (const character of text) {
    if (characters.length === SHOWN_LENGTH) return `${characters.slice(0, SHOWN_LENGTH - 1).join('')}…`;
    characters.push(character);
  }
  return text;
}

export class HttpProblem extends Error {
  override name = 'HttpProblem';
  readonly status: number;
  /** The last part of `type`: with the status, all a copy of this problem needs (see cache/single-flight.ts). */
  readonly slug: string;
  readonly type: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;

  /** `slug` names the problem type, e.g. `validation`, `rate-limited`, `redis-unavailable`. */
  constructor(status: number, slug: string, options: ProblemOptions = {}) {
    super(options.detail ?? statusTitle(status), { cause: options.cause });
    this.status = status;
    this.slug = slug;
    this.type = TYPE_BASE + slug;
    this.title = statusTitle(status);
    this.detail = options.detail;
    this.errors = options.errors;
    this.headers = { ...options.headers };
    if (options.retryAfterSeconds !== undefined) {
      this.headers['Retry-After'] = String(wholeSecondsToWait(options.retryAfterSeconds));
    }
  }

  toResponse(): APIGatewayProxyStructuredResultV2 {
    const body = {
      type: this.type,
      title: this.title,
      status: this.status,
      ...(this.detail === undefined ? {} : { detail: this.detail }),
      ...(this.errors === undefined ? {} : { errors: this.errors }),
    };
    return {
      statusCode: this.status,
      headers: { ...this.headers, 'Content-Type': 'application/problem+json' },
      body: JSON.stringify(body),
    };
  }
}

/** A wait as Retry-After tells it: whole seconds, rounded up, and at least 1 (a 0 invites a retry at once). */
export function wholeSecondsToWait(seconds: number): number {
  return Math.max(1, Math.ceil(seconds));
}

/** 500: a bug or a configuration error; what went wrong is logged, never told to the client. */
export function internalProblem(): HttpProblem {
  return new HttpProblem(500, 'internal', { detail: 'Something went wrong on our side.' });
}

/** 503: Redis, which every route but the catch-all needs, could not answer. */
export function redisUnavailable(cause?: unknown): HttpProblem {
  return new HttpProblem(503, 'redis-unavailable', { detail: 'Redis is unavailable; try again shortly.', retryAfterSeconds: 1, cause });
}

/** The problem `redisUnavailable` makes (not a 503 of another dependency, such as the secret's). */
export function isRedisUnavailable(error: unknown): boolean {
  return error instanceof HttpProblem && error.slug === 'redis-unavailable';
}

// OpenAI's SDKs take an error's message from the `error` member of the body; without one, their
// users read "400 status code (no body)". Problems answered by POST /embeddings (and by the
// catch-all, where a wrong base URL leads) therefore carry OpenAI's error object as an RFC 9457
// extension member, next to the problem's own fields, which stay as they are for every other client.

import type { MiddlewareObj } from '@middy/core';
import type { HttpEvent, HttpResult } from '../http.ts';
import type { FieldError } from '../problem.ts';

export interface OpenAiError {
  message: string;
  type: 'invalid_request_error' | 'server_error';
  /** The first field at fault, as OpenAI names the parameter. */
  param: string | null;
  /** The problem type's slug, e.g. `validation`, `invalid-token`, `rate-limited`. */
  code: string | null;
}

interface Problem {
  type?: unknown;
  title?: unknown;
  detail?: unknown;
  errors?: unknown;
}

function fieldErrorsOf(problem: Problem): FieldError[] {
  if (!Array.isArray(problem.errors)) return [];
  return problem.errors.filter(
    (error): error is FieldError => typeof error?.path === 'string' && typeof error?.message === 'string',
  );
}

/** OpenAI's error object for a problem: its detail (else title), then each field at fault. */
export function openAiErrorOf(problem: Problem, status: number): OpenAiError {
  const fields = fieldErrorsOf(problem);
  const lead = typeof problem.detail === 'string' ? problem.detail : typeof problem.title === 'string' ? problem.title : `Status ${status}.`;
  const summary = fields.map((field) => `${field.path} ${field.message}`).join('; ');
  const slug = typeof problem.type === 'string' && problem.type !== 'about:blank' ? problem.type.slice(problem.type.lastIndexOf('/') + 1) : '';
  const param = fields[0]?.path;
  return {
    message: summary === '' ? lead : `${lead} ${summary}`,
    type: status >= 500 ? 'server_error' : 'invalid_request_error',
    param: param === undefined || param === '(body)' ? null : param,
    code: slug === '' ? null : slug,
  };
}

function isProblemResponse(response: HttpResult | null | undefined): response is HttpResult & { body: string } {
  if (response === undefined || response === null || typeof response.body !== 'string') return false;
  const contentType = Object.entries(response.headers ?? {}).find(([name]) => name.toLowerCase() === 'content-type')?.[1];
  return String(contentType).startsWith('application/problem+json');
}

/**
 * Adds `error` to the problem response. Its `onError` must run after the one that builds the
 * problem response: middy runs `onError` in reverse order of `use`, so this goes before
 * httpBasics, and then sees every problem of the route (401 from auth, 429 from the rate limiter,
 * 400 from validation, 5xx from the provider or Redis).
 */
export function openAiErrorMember(): MiddlewareObj<HttpEvent, HttpResult> {
  const onError: MiddlewareObj<HttpEvent, HttpResult>['onError'] = (request) => {
    const response = request.response;
    if (!isProblemResponse(response)) return;
    let problem: unknown;
    try {
      problem = JSON.parse(response.body);
    } catch {
      return; // not ours to fix: the problem goes out as it is
    }
    if (typeof problem !== 'object' || problem === null || Array.isArray(problem)) return;
    response.body = JSON.stringify({ ...problem, error: openAiErrorOf(problem, response.statusCode ?? 500) });
  };
  return { name: 'openAiErrorMember', onError };
}

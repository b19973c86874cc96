// Every request that matches no route (API Gateway's catch-all), answered as a problem instead of
// API Gateway's bare message: a path the API serves, asked with another method, is a 405 with
// `Allow` (a plain OPTIONS gets 204 with `Allow`); any other path is a 404.

import middy from '@middy/core';
import { openAiErrorMember } from '#shared/embeddings/openai-error.ts';
import { httpBasics, withRequestLogging, type HttpEvent, type HttpResult } from '#shared/http.ts';
import { HttpProblem, shown } from '#shared/problem.ts';

/** The routes serverless.yml declares, by path (the stack test keeps the two equal). */
export const ROUTES: Readonly<Record<string, readonly string[]>> = {
  '/health': ['GET', 'HEAD'],
  '/auth/register': ['POST'],
  '/auth/login': ['POST'],
  '/auth/session': ['GET', 'HEAD'],
  '/auth/logout': ['POST'],
  '/chat': ['POST'],
  '/embeddings': ['POST'],
  '/usage': ['GET', 'HEAD'],
};

/** OpenAI clients are often given a base URL ending in /v1, which this API's routes do not have. */
const OPENAI_VERSION_PREFIX = '/v1';

/** What a 404 says: the route asked for, and the way to it when only a `/v1` stands in the way. */
function noRoute(method: string, path: string): string {
  const asked = `No route for ${method || 'this method'} ${shown(path)}`;
  const unversioned = path.startsWith(`${OPENAI_VERSION_PREFIX}/`) ? path.slice(OPENAI_VERSION_PREFIX.length) : undefined;
  if (unversioned === undefined || !Object.hasOwn(ROUTES, unversioned)) return `${asked}.`;
  return `${asked}: the base URL is the API's root, without ${OPENAI_VERSION_PREFIX} (${unversioned}).`;
}

async function notFound(event: HttpEvent): Promise<HttpResult> {
  const asked = event.requestContext?.http?.method ?? '';
  // A HEAD is answered as its GET would be, with that answer's length (RFC 9110 §9.3.2), so its text names GET.
  const method = asked === 'HEAD' ? 'GET' : asked;
  const path = event.rawPath ?? '';
  const methods = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  if (methods === undefined) throw new HttpProblem(404, 'not-found', { detail: noRoute(method, path) });
  const allow = [...methods, 'OPTIONS'].join(', ');
  if (method === 'OPTIONS') return { statusCode: 204, headers: { Allow: allow } };
  throw new HttpProblem(405, 'method-not-allowed', {
    detail: `${path} answers ${methods.join(', ')}, not ${method || 'this method'}.`,
    headers: { Allow: allow },
  });
}

export const handler = withRequestLogging(
  'not-found',
  // OpenAI's error member too: an OpenAI client given a wrong base URL (one ending in /v1) lands
  // here, and its user then reads the route it asked for rather than "404 status code (no body)".
  middy<HttpEvent, HttpResult>().use(openAiErrorMember()).use(httpBasics({ parseBody: false })).handler(notFound),
);

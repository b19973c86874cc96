// Every request that matches no route: a 404 problem instead of API Gateway's bare message.

import middy from '@middy/core';
import { httpBasics, withRequestLogging, type HttpEvent, type HttpResult } from '#shared/http.ts';
import { HttpProblem } from '#shared/problem.ts';

async function notFound(event: HttpEvent): Promise<HttpResult> {
  throw new HttpProblem(404, 'not-found', {
    detail: `No route for ${event.requestContext?.http?.method ?? 'this method'} ${event.rawPath ?? ''}.`,
  });
}

export const handler = withRequestLogging(
  'not-found',
  middy<HttpEvent, HttpResult>().use(httpBasics({ parseBody: false })).handler(notFound),
);

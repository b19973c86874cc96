// The contract's shape of a refusal: a 4xx with an RFC 9457 problem body whose `status` is the
// response's status, and the headers that go with some statuses.

import { expect } from 'vitest';

export interface Answer {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** Asserts that `answer` is a 4xx problem+json (never a 5xx, never a bare body). */
export function expectClientProblem(answer: Answer, context = ''): void {
  const where = context === '' ? '' : ` (${context})`;
  expect(answer.statusCode, `status${where}: ${answer.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(answer.statusCode, `status${where}: ${answer.body.slice(0, 300)}`).toBeLessThan(500);
  expect(answer.headers['content-type'], `content-type${where}`).toBe('application/problem+json');
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(problem, `problem body${where}`).toMatchObject({ type: expect.any(String), title: expect.any(String), status: answer.statusCode });
  if (answer.statusCode === 401) expect(answer.headers['www-authenticate'], `WWW-Authenticate${where}`).toMatch(/^Bearer/);
  if (answer.statusCode === 429) expect(answer.headers['retry-after'], `Retry-After${where}`).toMatch(/^\d+$/);
}

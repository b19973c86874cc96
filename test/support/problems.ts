// The problem a call under test refused with, for tests of code that throws an HttpProblem.

import { HttpProblem } from '../../shared/problem.ts';

/** The HttpProblem `promise` rejects with; an answer or any other error fails the test, naming it. */
export async function problemOf(promise: Promise<unknown>): Promise<HttpProblem> {
  const outcome = await promise.then(
    () => ({ answered: true as const }),
    (error: unknown) => ({ answered: false as const, error }),
  );
  if (!outcome.answered && outcome.error instanceof HttpProblem) return outcome.error;
  throw new Error(`expected a problem, got ${outcome.answered ? 'an answer' : String(outcome.error)}`);
}

// Mixed traffic through the handlers, each answer timed: what a warm container sees from many
// clients at once. Used by the fault tests to send batches while a dependency fails.

import { expect } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { httpEvent, invoke, type InvokeResult } from '../support/lambda.ts';
import { bearer, callLogin, callSession, type SignedIn } from '../support/session.ts';
import { expectClientProblem } from './problems.ts';

export interface Outcome {
  route: string;
  status: number;
  ms: number;
  answer: InvokeResult;
}

export async function timed(route: string, call: () => Promise<InvokeResult>): Promise<Outcome> {
  const started = performance.now();
  const answer = await call();
  return { route, status: answer.statusCode, ms: performance.now() - started, answer };
}

export interface Client extends SignedIn {
  email: string;
  /** A question asked once already, so that asking it again is a cache hit. */
  knownQuestion: string;
}

let sequence = 0;

export const chatBody = (content: string) => ({ messages: [{ role: 'user', content }] });

/** One request of each kind for each client: session, chat hit, chat miss, embeddings, login. */
export function mixedBatch(clients: Client[]): Array<Promise<Outcome>> {
  return clients.flatMap((client) => {
    sequence += 1;
    const auth = bearer(client.token);
    return [
      timed('GET /auth/session', () => callSession(client.token)),
      timed('POST /chat (hit)', () => invoke(chat, httpEvent('POST', '/chat', { headers: auth, body: chatBody(client.knownQuestion) }))),
      timed('POST /chat (miss)', () => invoke(chat, httpEvent('POST', '/chat', { headers: auth, body: chatBody(`question ${sequence} ${Date.now()}`) }))),
      timed('POST /embeddings', () => invoke(embeddings, httpEvent('POST', '/embeddings', { headers: auth, body: { input: [`text ${sequence}`, client.knownQuestion] } }))),
      timed('POST /auth/login', () => callLogin({ email: client.email, password: client.password })),
    ];
  });
}

/** An answer while a dependency is down: the 503 problem with Retry-After, never another 5xx. */
export function expectUnavailable(outcome: Outcome): void {
  const { answer } = outcome;
  if (answer.statusCode < 500) return;
  expect(answer.statusCode, `${outcome.route}: ${answer.body}`).toBe(503);
  expect(answer.headers['content-type']).toBe('application/problem+json');
  expect(answer.headers['retry-after']).toMatch(/^\d+$/);
  expect(answer.json.status).toBe(503);
}

/** Only answers that a client can act on: 2xx, the 4xx problems of the contract, or a 503 problem. */
export function expectContractAnswer(outcome: Outcome): void {
  if (outcome.status >= 500) expectUnavailable(outcome);
  else if (outcome.status >= 400) expectClientProblem(outcome.answer, outcome.route);
}

// OpenAI's error object built from a problem, as POST /embeddings adds it: message, param, type
// and code as OpenAI's SDKs read them.

import { describe, expect, it } from 'vitest';
import { openAiErrorOf } from '../../shared/embeddings/openai-error.ts';
import { HttpProblem } from '../../shared/problem.ts';

const problemBody = (problem: HttpProblem) => JSON.parse(problem.toResponse().body!);

describe("OpenAI's error object for a problem", () => {
  it('carries the detail and every field at fault in its message, the first field as param and the slug as code', () => {
    const problem = new HttpProblem(400, 'validation', {
      detail: 'The request body is not valid.',
      errors: [
        { path: 'input.1', message: 'must be a string' },
        { path: 'model', message: 'must be a non-empty string' },
      ],
    });

    const error = openAiErrorOf(problemBody(problem), 400);

    expect(error).toEqual({
      message: 'The request body is not valid. input.1 must be a string; model must be a non-empty string',
      type: 'invalid_request_error',
      param: 'input.1',
      code: 'validation',
    });
  });

  it('is a server_error for a 5xx, with the detail alone when no field is at fault', () => {
    const problem = new HttpProblem(502, 'embeddings-upstream-error', { detail: 'The embeddings provider answered with status 500.' });

    expect(openAiErrorOf(problemBody(problem), 502)).toEqual({
      message: 'The embeddings provider answered with status 500.',
      type: 'server_error',
      param: null,
      code: 'embeddings-upstream-error',
    });
  });

  it('falls back on the title when the problem has no detail, and names no param for the body as a whole', () => {
    const problem = new HttpProblem(400, 'validation', { errors: [{ path: '(body)', message: 'must be a JSON object' }] });

    const error = openAiErrorOf(problemBody(problem), 400);

    expect(error.message).toBe('Bad Request (body) must be a JSON object');
    expect(error.param).toBeNull();
  });

  it('has a null code for a problem without a type of ours', () => {
    expect(openAiErrorOf({ type: 'about:blank', title: 'Not Found' }, 404).code).toBeNull();
  });
});

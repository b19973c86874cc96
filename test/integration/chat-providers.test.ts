// The chat providers, against a local stand-in for the Anthropic API: the stand-in checked with
// the official SDK, the thin client's retries, deadlines and error mapping, the offline local
// tutor, and the choice of provider and system prompt from the configuration.

import Anthropic from '@anthropic-ai/sdk';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config.ts';
import { anthropicProvider, ANTHROPIC_VERSION } from '../../shared/llm/anthropic.ts';
import { LOCAL_TUTOR_LABEL, localTutor } from '../../shared/llm/local.ts';
import { chatProvider, type CompletionRequest } from '../../shared/llm/provider.ts';
import { DEFAULT_SYSTEM_PROMPT, systemPrompt } from '../../shared/llm/system-prompt.ts';
import { estimateConversationTokens, estimateTokens } from '../../shared/tokens-estimate.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { useEnvironment } from '../support/env.ts';
import { problemOf } from '../support/problems.ts';

const question: CompletionRequest = {
  model: 'claude-haiku-4-5',
  system: 'You are a patient tutor.',
  messages: [{ role: 'user', content: 'Why is the sky blue?' }],
  maxTokens: 256,
  temperature: 0.7,
};

const inSeconds = (seconds: number) => ({ deadline: Date.now() + seconds * 1000 });

describe('the Anthropic double speaks the Messages wire format', () => {
  let double: AnthropicDouble;
  let sdk: Anthropic;
  beforeAll(async () => {
    double = await startAnthropicDouble();
    sdk = new Anthropic({ apiKey: double.apiKey, baseURL: double.url, maxRetries: 0 });
  });
  beforeEach(() => double.reset());
  afterAll(() => double.close());

  it('answers a JSON request that the official SDK parses', async () => {
    const message = await sdk.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'What is a prime number?' }],
    });

    expect(message.type).toBe('message');
    expect(message.stop_reason).toBe('end_turn');
    expect(message.content[0]).toMatchObject({ type: 'text', text: expect.stringContaining('What is a prime number?') });
    expect(message.usage.output_tokens).toBeGreaterThan(0);
  });

  it('streams server-sent events that the official SDK assembles into the same message', async () => {
    const stream = sdk.messages.stream({
      model: 'claude-haiku-4-5',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'What is a prime number?' }],
    });
    const deltas: string[] = [];
    stream.on('text', (text) => deltas.push(text));

    const message = await stream.finalMessage();

    expect(deltas.length).toBeGreaterThan(1);
    expect(message.content[0]).toMatchObject({ type: 'text', text: deltas.join('') });
    expect(message.content[0]).toMatchObject({ text: expect.stringContaining('What is a prime number?') });
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.output_tokens).toBeGreaterThan(1);
  });

  it('fails like the real API, with the error type and retry-after the SDK reads', async () => {
    double.script({ status: 529, retryAfter: 3 });

    const error = await sdk.messages
      .create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect((error as InstanceType<typeof Anthropic.APIError>).status).toBe(529);
    expect((error as InstanceType<typeof Anthropic.APIError>).headers?.get('retry-after')).toBe('3');
    expect(double.calls).toBe(1);
  });

  it('refuses a wrong API key with 401 as the real API does', async () => {
    const stranger = new Anthropic({ apiKey: 'sk-ant-wrong', baseURL: double.url, maxRetries: 0 });

    const error = await stranger.messages
      .create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
  });
});

describe('the Anthropic provider (thin client)', () => {
  let double: AnthropicDouble;
  const claude = () => anthropicProvider({ apiKey: double.apiKey, baseUrl: double.url });
  beforeAll(async () => {
    double = await startAnthropicDouble();
  });
  beforeEach(() => double.reset());
  afterAll(() => double.close());

  it('sends the key, the API version and the system prompt as a cached system block', async () => {
    await claude().complete(question, inSeconds(5));

    const [received] = double.requests;
    expect(received?.headers['x-api-key']).toBe(double.apiKey);
    expect(received?.headers['anthropic-version']).toBe(ANTHROPIC_VERSION);
    expect(received?.body).toMatchObject({
      model: 'claude-haiku-4-5',
      max_tokens: 256,
      temperature: 0.7,
      system: [{ type: 'text', text: 'You are a patient tutor.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: 'Why is the sky blue?' }],
    });
  });

  it('returns the answer with its stop reason and every input token, cached prompt tokens included', async () => {
    const first = await claude().complete(question, inSeconds(5));
    const second = await claude().complete(question, inSeconds(5));

    expect(first).toMatchObject({ id: expect.stringMatching(/^msg_/), model: 'claude-haiku-4-5', stopReason: 'end_turn' });
    expect(first.content).toContain('Why is the sky blue?');
    expect(second.usage.inputTokens).toBe(first.usage.inputTokens);
    expect(first.usage.outputTokens).toBeGreaterThan(0);
  });

  it('estimates the input and output from the conversation and the answer when Claude sends counts that are no whole numbers', async () => {
    double.script({ usage: { input_tokens: -7, cache_creation_input_tokens: 2.5, cache_read_input_tokens: 1e300, output_tokens: 1e300 } });

    const completion = await claude().complete(question, inSeconds(5));

    expect(completion.usage).toEqual({
      inputTokens: estimateConversationTokens(question.system, question.messages),
      outputTokens: estimateTokens(completion.content),
    });
  });

  it('passes Claude 429 on as 429 with Claude\'s Retry-After, without retrying', async () => {
    double.script({ status: 429, retryAfter: 17 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(429);
    expect(problem.headers['Retry-After']).toBe('17');
    expect(double.calls).toBe(1);
  });

  it('passes a Claude 429 that names no wait on with a Retry-After of its own: a 429 always says when', async () => {
    double.script({ status: 429 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(429);
    expect(problem.headers['Retry-After']).toBe('5');
    expect(double.calls).toBe(1);
  });

  it('retries once after a 529 with a short Retry-After and returns the answer', async () => {
    double.script({ status: 529, retryAfterMs: 50 });

    const answer = await claude().complete(question, inSeconds(5));

    expect(answer.stopReason).toBe('end_turn');
    expect(double.calls).toBe(2);
  });

  it('answers 503 with Retry-After when Claude stays overloaded', async () => {
    double.script({ status: 529, retryAfterMs: 10 }, { status: 529, retryAfter: 4 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(503);
    expect(problem.type).toMatch(/upstream-overloaded$/);
    expect(problem.headers['Retry-After']).toBe('4');
    expect(double.calls).toBe(2);
  });

  it('does not wait out a long Retry-After: the client gets it instead', async () => {
    double.script({ status: 529, retryAfter: 30 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(503);
    expect(problem.headers['Retry-After']).toBe('30');
    expect(double.calls).toBe(1);
  });

  it('passes on at most an hour of a Retry-After, however long Claude asks', async () => {
    double.script({ status: 429, retryAfter: 99_999 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(429);
    expect(problem.headers['Retry-After']).toBe('3600');
  });

  it('answers 502 when Claude fails with 500 twice, passing on a Retry-After it gave', async () => {
    double.script({ status: 500 }, { status: 500, retryAfter: 2 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(502);
    expect(problem.headers['Retry-After']).toBe('2');
    expect(double.calls).toBe(2);
  });

  it('passes on Claude\'s 503 and its Retry-After when Claude stays unavailable', async () => {
    double.script({ status: 503 }, { status: 503, retryAfter: 11 });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(503);
    expect(problem.type).toMatch(/upstream-unavailable$/);
    expect(problem.headers['Retry-After']).toBe('11');
  });

  it('does not retry when Claude says x-should-retry: false', async () => {
    double.script({ status: 500, shouldRetry: false });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(502);
    expect(double.calls).toBe(1);
  });

  it('retries once after a dropped connection', async () => {
    double.script({ drop: true });

    const answer = await claude().complete(question, inSeconds(5));

    expect(answer.stopReason).toBe('end_turn');
    expect(double.calls).toBe(2);
  });

  it('answers 502 when nothing listens at the base URL', async () => {
    const nowhere = anthropicProvider({ apiKey: double.apiKey, baseUrl: 'http://127.0.0.1:1' });

    const problem = await problemOf(nowhere.complete(question, inSeconds(5)));

    expect(problem.status).toBe(502);
  });

  it('answers 502 when Claude replies with something that is not a message', async () => {
    double.script({ garbage: true });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(502);
  });

  it('answers 502 saying the answer could not be read when Claude replies with something that is not JSON', async () => {
    double.script({ unreadable: true }, { unreadable: true });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(502);
    expect(problem.detail).toBe('Claude sent an answer that could not be read.');
  });

  it('gives up at the deadline with a 502 and Retry-After', async () => {
    double.script({ delayMs: 20_000 }); // a call that waited for Claude would take 20 s
    const started = Date.now();

    const problem = await problemOf(claude().complete(question, { deadline: Date.now() + 300 }));

    expect(problem.status).toBe(502);
    expect(problem.type).toMatch(/upstream-timeout$/);
    expect(problem.headers['Retry-After']).toBe('5');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('tells the client to shorten a conversation longer than the model reads (422)', async () => {
    double.script({ status: 400, message: 'prompt is too long: 215000 tokens > 200000 maximum' });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(422);
  });

  it('tells the client to shorten the conversation or ask for fewer tokens when both together exceed the model (422)', async () => {
    double.script({ status: 400, message: 'input length and `max_tokens` exceed context limit: 199759 + 4096 > 200000, decrease input length or `max_tokens` and try again' });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(problem.status).toBe(422);
    expect(problem.type).toMatch(/conversation-too-long$/);
    expect(problem.detail).toMatch(/maxTokens/);
  });

  it("keeps Claude's request-id in the cause of a failure, which the operator quotes to Anthropic", async () => {
    double.script({ status: 500, shouldRetry: false });

    const problem = await problemOf(claude().complete(question, inSeconds(5)));

    expect(String((problem.cause as Error).message)).toMatch(/request req_double_\d+/);
    expect(JSON.stringify(problem.toResponse())).not.toContain('req_double_');
  });

  it('answers 502 when Claude rejects the key, and the problem never holds the key', async () => {
    const wrongKey = 'sk-ant-api03-this-key-is-wrong-000000000000';
    const rejected = anthropicProvider({ apiKey: wrongKey, baseUrl: double.url });

    const problem = await problemOf(rejected.complete(question, inSeconds(5)));

    expect(problem.status).toBe(502);
    expect(JSON.stringify(problem.toResponse())).not.toContain(wrongKey);
  });
});

describe('the local tutor', () => {
  it('labels every answer as offline and not Claude, and reports model local-tutor', async () => {
    const answer = await localTutor().complete(question, inSeconds(1));

    expect(answer.content.startsWith(LOCAL_TUTOR_LABEL)).toBe(true);
    expect(answer.model).toBe('local-tutor');
    expect(answer.stopReason).toBe('end_turn');
    expect(answer.usage.inputTokens).toBeGreaterThan(0);
  });

  it('gives the same answer to the same question, each made under an id of its own as Claude\'s are', async () => {
    const first = await localTutor().complete(question, inSeconds(1));
    const second = await localTutor().complete(question, inSeconds(1));

    expect({ ...second, id: undefined }).toEqual({ ...first, id: undefined });
    expect(second.id).not.toBe(first.id);
    expect(second.id).toMatch(/^local_[0-9a-f]{24}$/);
  });

  it('quotes a long question of emoji without splitting one: the answer is valid text', async () => {
    const emoji = { ...question, messages: [{ role: 'user' as const, content: '😀'.repeat(500) }] };

    const answer = await localTutor().complete(emoji, inSeconds(1));

    expect(answer.content.isWellFormed()).toBe(true);
    expect(answer.content).toContain('😀😀...');
  });

  it('cuts the answer at maxTokens and says so in the stop reason', async () => {
    const answer = await localTutor().complete({ ...question, maxTokens: 5 }, inSeconds(1));

    expect(answer.content.length).toBeLessThanOrEqual(20);
    expect(answer.stopReason).toBe('max_tokens');
  });
});

describe('provider choice and the system prompt', () => {
  afterAll(() => useEnvironment({}));

  it('uses the local tutor when no API key is set', async () => {
    await useEnvironment({ ANTHROPIC_API_KEY: undefined, CHAT_PROVIDER: undefined });

    expect(chatProvider().name).toBe('local');
  });

  it('uses Claude when an API key is set', async () => {
    await useEnvironment({ ANTHROPIC_API_KEY: 'sk-ant-api03-some-key-000', CHAT_PROVIDER: undefined });

    expect(chatProvider().name).toBe('anthropic');
  });

  it('refuses CHAT_PROVIDER=anthropic without an API key, naming the variable', async () => {
    await useEnvironment({ ANTHROPIC_API_KEY: undefined, CHAT_PROVIDER: 'anthropic' });

    expect(() => chatProvider()).toThrow(/ANTHROPIC_API_KEY/);
  });

  it('names ANTHROPIC_BASE_URL when it is not an http(s) URL, and drops a trailing slash', () => {
    expect(() => loadConfig({ ANTHROPIC_BASE_URL: 'api.anthropic.com' })).toThrow(/ANTHROPIC_BASE_URL: expected an http:\/\/ or https:\/\/ URL/);
    const claude = (env: Record<string, string>) => loadConfig({ ANTHROPIC_API_KEY: 'sk-test-key', ...env }).chat;
    expect(claude({ ANTHROPIC_BASE_URL: 'http://127.0.0.1:9999/' })).toMatchObject({ provider: 'anthropic', anthropicBaseUrl: 'http://127.0.0.1:9999' });
    expect(claude({})).toMatchObject({ provider: 'anthropic', anthropicBaseUrl: 'https://api.anthropic.com' });
  });

  it('uses the default tutor prompt unless configured', async () => {
    await useEnvironment({ CHAT_SYSTEM_PROMPT: undefined, CHAT_SYSTEM_PROMPT_FILE: undefined });

    expect(systemPrompt().text).toBe(DEFAULT_SYSTEM_PROMPT);
    expect(systemPrompt().version).toMatch(/^[0-9a-f]{16}$/);
  });

  it('takes the prompt from CHAT_SYSTEM_PROMPT, with a different version', async () => {
    await useEnvironment({ CHAT_SYSTEM_PROMPT: undefined, CHAT_SYSTEM_PROMPT_FILE: undefined });
    const defaultVersion = systemPrompt().version;
    await useEnvironment({ CHAT_SYSTEM_PROMPT: 'You tutor chemistry.' });

    expect(systemPrompt().text).toBe('You tutor chemistry.');
    expect(systemPrompt().version).not.toBe(defaultVersion);
  });

  it('reads the prompt from CHAT_SYSTEM_PROMPT_FILE', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tc-prompt-')), 'prompt.md');
    writeFileSync(file, 'You tutor physics with questions.\n');
    await useEnvironment({ CHAT_SYSTEM_PROMPT_FILE: file });

    expect(systemPrompt().text).toBe('You tutor physics with questions.');
  });

  it('names CHAT_SYSTEM_PROMPT_FILE when the file cannot be read', async () => {
    await useEnvironment({ CHAT_SYSTEM_PROMPT_FILE: '/nonexistent/prompt.md' });

    expect(() => systemPrompt()).toThrow(ConfigError);
    expect(() => systemPrompt()).toThrow(/CHAT_SYSTEM_PROMPT_FILE/);
  });
});

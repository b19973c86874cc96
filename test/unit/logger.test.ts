// The logger's scrubbing: a registered secret never reaches a log line or a logged excerpt,
// whatever characters it holds and wherever an excerpt is cut.

import { describe, expect, it } from 'vitest';
import { log, registerSecret, scrub, scrubbedExcerpt } from '#shared/logger.ts';
import { captureOutput } from '../support/logs.ts';

/** The lines `act` writes (the tests run with LOG_LEVEL=error, so errors are what is written). */
function linesWrittenBy(act: () => void): string[] {
  const output = captureOutput();
  try {
    act();
  } finally {
    output.restore();
  }
  return output.text().split('\n').filter((line) => line !== '');
}

describe('the logger', () => {
  it('scrubs a secret whose quotes and backslashes JSON escapes in the line', () => {
    const secret = 'r3dis"pa$$:w@rd/\\%é\t';
    registerSecret(secret);

    const [line] = linesWrittenBy(() => log.error('connecting', { detail: `with ${secret} now` }));

    expect(line).toBeDefined();
    expect(JSON.parse(line!).detail).toBe('with *** now');
  });

  it('scrubs a plain secret from every field of a line', () => {
    const secret = 'sk-plain-secret-0123456789';
    registerSecret(secret);

    const [line] = linesWrittenBy(() => log.error(`message ${secret}`, { a: secret, nested: { b: [secret] } }));

    expect(line).not.toContain('sk-plain');
    expect(JSON.parse(line!)).toMatchObject({ message: 'message ***', a: '***', nested: { b: ['***'] } });
  });
});

describe('a URL password that holds an @', () => {
  it('is scrubbed whole when registered, not cut at its own @', () => {
    const password = 'p@ssword-0f-the-day';
    registerSecret(password);

    const [line] = linesWrittenBy(() => log.error('connecting', { url: `rediss://default:${password}@redis.example.com:6379` }));

    expect(JSON.parse(line!).url).toBe('rediss://default:***@redis.example.com:6379');
  });

  it('is scrubbed up to the @ before the host when nobody registered it (an operator tool echoing its arguments)', () => {
    const text = "Unexpected argument 'rediss://:unregistered@half@redis.example.com:6379'";

    const clean = scrub(text);

    expect(clean).toBe("Unexpected argument 'rediss://:***@redis.example.com:6379'");
  });

  it('stops at the end of the URL: an address later in the line is kept', () => {
    const line = JSON.stringify({ endpoint: 'redis://u:pw123456@host:6379', email: 'ada@example.org' });

    expect(scrub(line)).toBe(JSON.stringify({ endpoint: 'redis://u:***@host:6379', email: 'ada@example.org' }));
  });
});

describe('a URL user name given alone (how redis-cli users write a password)', () => {
  it('is masked, and an address later in the line is kept', () => {
    const line = JSON.stringify({ endpoint: 'redis://Usr64e87341982fd1eb@127.0.0.1:6591', email: 'ada@example.org' });

    expect(scrub(line)).toBe(JSON.stringify({ endpoint: 'redis://***@127.0.0.1:6591', email: 'ada@example.org' }));
  });

  it('is masked up to the @ before the host when it holds an @ itself', () => {
    expect(scrub('connecting to rediss://half@other-half@redis.example.com:6379 now')).toBe('connecting to rediss://***@redis.example.com:6379 now');
  });

  it('is not found in a URL without userinfo: its host, port and path are kept', () => {
    const text = 'tried redis://127.0.0.1:6591 and redis://cache.example.test/2, then wrote to ada@example.org';

    expect(scrub(text)).toBe(text);
  });
});

describe('a scrubbed excerpt', () => {
  it('leaves no part of a secret that the cut falls inside', () => {
    const secret = 'sk-excerpt-secret-abcdefghijklmnop';
    registerSecret(secret);
    const text = `${'x'.repeat(20)}${secret}${'y'.repeat(50)}`;

    const excerpt = scrubbedExcerpt(text, 30);

    expect(excerpt).toBe(`${'x'.repeat(20)}***${'y'.repeat(7)}`);
    expect(excerpt).not.toContain('sk-');
  });
});

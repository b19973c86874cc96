// What the operator tools print: report lines on stdout, failures and progress on stderr, every
// line scrubbed of the passwords the tools have seen (URL passwords, secret values).

import { scrub } from '../../shared/logger.ts';

export function say(line = ''): void {
  process.stdout.write(`${scrub(line)}\n`);
}

export function complain(line: string): void {
  process.stderr.write(`${scrub(line)}\n`);
}

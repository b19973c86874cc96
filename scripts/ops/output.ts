// What the operator tools print: report lines on stdout, failures and progress on stderr, every
// line scrubbed of the passwords the tools have seen (URL passwords, secret values).

import { scrub } from '#shared/logger.ts';

export function say(line = ''): void {
  process.stdout.write(`${scrub(line)}\n`);
}

export function complain(line: string): void {
  process.stderr.write(`${scrub(line)}\n`);
}

/**
 * Runs a tool's `main` and exits with the code it returns. What `main` did not expect still ends
 * in one scrubbed line and code 1, never a stack trace that could carry a connection string.
 */
export function runTool(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      complain(`✗ Unexpected failure: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}

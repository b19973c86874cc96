// The chat function's bundle, built with the Lambda build options: under 300 KB minified and
// without the Anthropic SDK.

import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { lambdaBuildOptions } from '../../infra/bundling/options.ts';

const entry = fileURLToPath(new URL('../../functions/chat.ts', import.meta.url));

describe('the chat function bundle', () => {
  it('stays under 300 KB minified, without the Anthropic SDK', async () => {
    const result = await build({ ...lambdaBuildOptions(), entryPoints: [entry], write: false, sourcemap: false, metafile: true });

    const bytes = result.outputFiles[0]!.contents.byteLength;
    const inputs = Object.keys(result.metafile.inputs);
    expect(bytes).toBeLessThan(300 * 1024);
    expect(inputs.some((input) => input.includes('@anthropic-ai/sdk'))).toBe(false);
  });
});

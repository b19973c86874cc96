import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(new URL('../../functions/chat.ts', import.meta.url));

describe('the chat function bundle', () => {
  it('stays under 300 KB minified, without the Anthropic SDK', async () => {
    // The settings of custom.esbuild in serverless.yml.
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      minify: true,
      platform: 'node',
      target: 'node22',
      format: 'esm',
      mainFields: ['module', 'main'],
      external: ['@aws-sdk/*'],
      write: false,
      metafile: true,
      logLevel: 'error',
    });

    const bytes = result.outputFiles[0]!.contents.byteLength;
    const inputs = Object.keys(result.metafile.inputs);
    expect(bytes).toBeLessThan(300 * 1024);
    expect(inputs.some((input) => input.includes('@anthropic-ai/sdk'))).toBe(false);
  });
});

// The committed WebAssembly modules of shared/: each one is what its .wat source compiles to.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedModule, generatedPath, watSources } from '../../scripts/build-wasm.ts';

describe('the WebAssembly modules of shared/', () => {
  it('include the float printer', () => {
    expect(watSources().map((path) => basename(path))).toContain('shortest-float32.wat');
  });

  it.each(watSources().map((path) => [basename(path), path]))('%s: the committed module is what the source compiles to (npm run build:wasm)', async (_name, watPath) => {
    const expected = await generatedModule(watPath);

    expect(readFileSync(generatedPath(watPath), 'utf8')).toBe(expected);
  });
});

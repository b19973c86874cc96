// Builds a handler the way the deployment does (the `custom.esbuild` settings of serverless.yml),
// so that the benchmarks measure the code Lambda runs, ours and the peer's alike.

import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { lambdaBuildOptions, projectRoot } from '../infra/bundling/options.ts';

export const root = projectRoot;


/**
 * Bundles `entry` (relative to the project root) to `bench/.out/<folder>/<name>.mjs`; returns its
 * path. The peer is built with the same settings minus our own bundling choices (the stand-ins for
 * `debug` and `assert`, the plugins), as a team assembling popular parts would build it.
 */
export async function bundle(entry: string, name: string, folder: string, builtAs: 'ours' | 'peer' = 'ours'): Promise<string> {
  const outDir = `${root}bench/.out/${folder}/`;
  mkdirSync(outDir, { recursive: true });
  const outfile = `${outDir}${name}.mjs`;
  const options = lambdaBuildOptions();
  if (builtAs === 'peer') {
    delete options.alias;
    delete options.plugins;
  }
  await build({ ...options, entryPoints: [`${root}${entry}`], outfile });
  return outfile;
}

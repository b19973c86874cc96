// Builds a handler the way the deployment does (the `custom.esbuild` settings of serverless.yml),
// so that the benchmarks measure the code Lambda runs, ours and the peer's alike.

import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

/** What serverless.yml sets for every function (provider.environment.NODE_OPTIONS). */
export const LAMBDA_NODE_OPTIONS = '--enable-source-maps';

/** Bundles `entry` (relative to the project root) to `bench/.out/<folder>/<name>.mjs`; returns its path. */
export async function bundle(entry: string, name: string, folder: string): Promise<string> {
  const outDir = `${root}bench/.out/${folder}/`;
  mkdirSync(outDir, { recursive: true });
  const outfile = `${outDir}${name}.mjs`;
  await build({
    entryPoints: [`${root}${entry}`],
    outfile,
    bundle: true,
    minify: true,
    sourcemap: 'external',
    platform: 'node',
    target: 'node22',
    format: 'esm',
    mainFields: ['module', 'main'],
    // The Lambda runtime ships the AWS SDK v3: left out of the bundle, loaded from node_modules.
    external: ['@aws-sdk/*'],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'error',
  });
  return outfile;
}

// How a function is built for Lambda, as options for esbuild's API. The settings live in
// infra/bundling/esbuild.json, which serverless.yml reads as `custom.esbuild`, so the tests and
// benchmarks that build a function build exactly what `sls package` deploys.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Keys of custom.esbuild that serverless-esbuild reads itself and does not pass to esbuild. */
interface PluginSettings {
  outputFileExtension: string;
  exclude: string[];
  packager: string;
}

function deployedSettings(): BuildOptions & PluginSettings {
  return JSON.parse(readFileSync(new URL('./esbuild.json', import.meta.url), 'utf8')) as BuildOptions & PluginSettings;
}

/** The deployed esbuild options, relative paths (the `alias` of `debug`) resolved from the project root. */
export function lambdaBuildOptions(): BuildOptions {
  const { outputFileExtension: _extension, exclude: _exclude, packager: _packager, ...options } = deployedSettings();
  return { ...options, absWorkingDir: projectRoot, logLevel: 'error' };
}

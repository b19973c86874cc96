// How a function is built for Lambda, as options for esbuild's API. The settings live in
// infra/bundling/esbuild.json, which serverless.yml reads as `custom.esbuild`, so the tests and
// benchmarks that build a function build exactly what `sls package` deploys.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { BuildOptions, Plugin } from 'esbuild';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Keys of custom.esbuild that serverless-esbuild reads itself and does not pass to esbuild as they are. */
interface PluginSettings {
  outputFileExtension: string;
  exclude: string[];
  packager: string;
  /** A module exporting the plugins, relative to the project root (esbuild takes the plugins themselves). */
  plugins: string;
  /**
   * What `npm run dev` rebuilds on: the functions' sources only. The default (every .js and .ts
   * file of the project) rebuilt on any file a test or a tool wrote, and the rebuild ended the
   * requests in flight with serverless-offline's time-out.
   */
  watch: { pattern: string[]; ignore: string[] };
}

function deployedSettings(): Omit<BuildOptions, 'plugins'> & PluginSettings {
  return JSON.parse(readFileSync(new URL('./esbuild.json', import.meta.url), 'utf8')) as Omit<BuildOptions, 'plugins'> & PluginSettings;
}

/** The deployed esbuild options, relative paths (the `alias` of `debug`, the plugins) resolved from the project root. */
export function lambdaBuildOptions(): BuildOptions {
  const { outputFileExtension: _extension, exclude: _exclude, packager: _packager, watch: _watch, plugins, ...options } = deployedSettings();
  const loadPlugins = createRequire(import.meta.url);
  return { ...options, plugins: loadPlugins(`${projectRoot}${plugins}`) as Plugin[], absWorkingDir: projectRoot, logLevel: 'error' };
}

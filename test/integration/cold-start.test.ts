// What a cold start pays: function imports that load no Redis client, SDK or configuration,
// bundle sizes, ioredis and assert as bundled for Lambda, and a first request while the Redis URL
// is still being read from a local stand-in for Secrets Manager.

import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lambdaBuildOptions, projectRoot } from '../../infra/bundling/options.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { startRedisCluster, startStandaloneRedis } from '../support/redis.ts';
import { callLogin, callRegister, uniqueEmail } from '../support/session.ts';

const functionsDir = fileURLToPath(new URL('../../functions/', import.meta.url));
/** One name per handler file in functions/, e.g. `chat`. */
const functionNames = readdirSync(functionsDir)
  .filter((file) => file.endsWith('.ts'))
  .map((file) => file.slice(0, -3));
const functionFiles = functionNames.map((name) => `${functionsDir}${name}.ts`);

/** Packages whose evaluation a cold start pays only once a request needs them (see bench/cold-start.bench.ts). */
const LOADED_ON_FIRST_USE = ['ioredis', '@aws-sdk/', '@smithy/', '@anthropic-ai/sdk', 'openai'];

/**
 * In a fresh process, imports each function in turn and lists, for each, the packages of
 * node_modules that its import loaded (module hooks see every file as it is loaded).
 */
function packagesLoadedByImports(files: string[], environment: Record<string, string> = {}): Promise<Record<string, string[]>> {
  const script = `
import { registerHooks } from 'node:module';
const loaded = new Set();
registerHooks({ load(url, context, next) { loaded.add(url); return next(url, context); } });
const report = {};
for (const file of ${JSON.stringify(files)}) {
  const before = new Set(loaded);
  await import(file);
  const packages = [...loaded].filter((url) => !before.has(url) && url.includes('/node_modules/'))
    .map((url) => url.split('/node_modules/').pop().split('/').slice(0, url.split('/node_modules/').pop().startsWith('@') ? 2 : 1).join('/'));
  report[file.split('/').pop()] = [...new Set(packages)];
}
process.stdout.write(JSON.stringify(report));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, LOG_LEVEL: 'error', ...environment } }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(JSON.parse(stdout) as Record<string, string[]>),
    );
  });
}

describe('the init phase of every function', () => {
  it('loads neither the Redis client nor an SDK: they wait for the first request that needs them', async () => {
    const loaded = await packagesLoadedByImports(functionFiles);

    const eager = Object.entries(loaded).flatMap(([file, packages]) =>
      packages.filter((name) => LOADED_ON_FIRST_USE.some((lazy) => name === lazy || name.startsWith(lazy))).map((name) => `${file}: ${name}`),
    );
    expect(Object.keys(loaded)).toHaveLength(functionFiles.length);
    expect(eager).toEqual([]);
  });

  it('reads no configuration: every function imports even when every rate limit is malformed', async () => {
    const malformed = Object.fromEntries(
      ['RATE_LIMIT_CHAT', 'RATE_LIMIT_EMBEDDINGS', 'RATE_LIMIT_LOGIN', 'RATE_LIMIT_LOGIN_ACCOUNT'].map((name) => [name, 'abc']),
    );

    const loaded = await packagesLoadedByImports(functionFiles, malformed);

    expect(Object.keys(loaded).sort()).toEqual(functionNames.map((name) => `${name}.ts`).sort());
  });
});

describe('the bundle of every function', () => {
  it('stays under 250 KB minified (chat under 300 KB), built as serverless.yml deploys it', async () => {
    const sizes = await Promise.all(
      functionNames.map(async (name) => {
        // In memory: the source map, external when deployed, is not part of the size.
        const result = await build({ ...lambdaBuildOptions(), entryPoints: [`${functionsDir}${name}.ts`], write: false, sourcemap: false });
        return { name, kilobytes: result.outputFiles[0]!.contents.byteLength / 1024 };
      }),
    );

    const overBudget = sizes.filter(({ name, kilobytes }) => kilobytes >= (name === 'chat' ? 300 : 250));
    expect(overBudget).toEqual([]);
  });

  it('never reads the performance global, whose first read loads perf_hooks: durations use process.hrtime()', async () => {
    const texts = await Promise.all(
      functionNames.map(async (name) => {
        const result = await build({ ...lambdaBuildOptions(), entryPoints: [`${functionsDir}${name}.ts`], write: false, sourcemap: false });
        return { name, text: result.outputFiles[0]!.text };
      }),
    );

    const readers = texts.filter(({ text }) => /\bperformance\.\w/.test(text)).map(({ name }) => name);

    expect(readers).toEqual([]);
  });

  it('loads Node\'s built-ins with require(), so that no ESM facade reads their lazy exports', async () => {
    const result = await build({ ...lambdaBuildOptions(), entryPoints: [`${functionsDir}embeddings.ts`], write: false, sourcemap: false });

    const text = result.outputFiles[0]!.text;
    const builtinImports = text.match(/\bimport\s*\{[^}]*\}\s*from\s*["']node:[a-z_/]+["']/g) ?? [];
    // The banner's createRequire is the one import left: it is what makes require() available.
    expect(builtinImports).toEqual(["import { createRequire as __createRequire } from 'node:module'"]);
    // Minified: `module.exports = require("node:crypto")` with esbuild's own name for require.
    expect(/\.exports=\w+\("node:crypto"\)/.test(text), 'node:crypto loaded by require').toBe(true);
  });
});

/** Entries built as deployed, each in a file of its own, for the describes below. */
let entriesDir: string;
beforeAll(() => {
  entriesDir = mkdtempSync(join(tmpdir(), 'tc-bundled-entry-'));
});
afterAll(() => rmSync(entriesDir, { recursive: true, force: true }));

/** Bundles the module source ENTRY with the Lambda build options; returns its file and esbuild's warnings. */
async function bundleEntry(name: string, entry: string): Promise<{ outfile: string; warnings: unknown[] }> {
  const outfile = join(entriesDir, `${name}.mjs`);
  const result = await build({ ...lambdaBuildOptions(), stdin: { contents: entry, resolveDir: projectRoot, loader: 'js' }, outfile, sourcemap: false });
  return { outfile, warnings: result.warnings };
}

/** Bundles ENTRY as deployed, runs it in a fresh process; what it prints (as JSON) and esbuild's warnings. */
async function runBundled(name: string, entry: string): Promise<{ report: Record<string, unknown>; warnings: unknown[] }> {
  const { outfile, warnings } = await bundleEntry(name, entry);
  const report = await new Promise<Record<string, unknown>>((resolve, reject) => {
    execFile(process.execPath, [outfile], (error, stdout, stderr) => (error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(JSON.parse(stdout))));
  });
  return { report, warnings };
}

const requireFromHere = createRequire(import.meta.url);

/** What ioredis asks of @ioredis/commands. */
interface CommandTable {
  list: string[];
  exists(name: string): boolean;
  hasFlag(name: string, flag: string): boolean;
  getKeyIndexes(name: string, args: string[]): number[];
}

/** The text of every module of the installed ioredis. */
function ioredisSources(): string[] {
  const built = join(projectRoot, 'node_modules/ioredis/built');
  return (readdirSync(built, { recursive: true, encoding: 'utf8' }) as string[]).filter((file) => file.endsWith('.js')).map((file) => readFileSync(join(built, file), 'utf8'));
}

/**
 * Each command's (and subcommand's) answers to what ioredis asks: whether it exists, its FLAGS,
 * and its keys among arguments that give each kind of key position something to find.
 */
function answersOf(commands: CommandTable, flags: string[]): unknown[] {
  const table = requireFromHere('@ioredis/commands/built/commands.json') as Record<string, { subcommands?: Record<string, unknown> }>;
  const samples = [['k1', 'k2', 'k3', 'k4', 'k5', 'k6'], ['2', 'k1', 'k2', 'k3', 'k4'], ['0', 'STREAMS', 'k1', 'k2', '0', '0']];
  return commands.list.map((name) => {
    const calls = [...samples, ...Object.keys(table[name]!.subcommands ?? {}).flatMap((subcommand) => samples.map((args) => [subcommand, ...args]))];
    return [name, commands.exists(name), flags.map((flag) => commands.hasFlag(name, flag)), calls.map((args) => commands.getKeyIndexes(name, args))];
  });
}

describe('ioredis as bundled for Lambda', () => {
  it('defines its commands on a prototype made a dictionary first, and leaves every command and nothing else there', async () => {
    const entry = "import { Redis } from 'ioredis'; export const names = Object.getOwnPropertyNames(Object.getPrototypeOf(Redis.prototype));";

    const { outfile, warnings } = await bundleEntry('commands', entry);
    const { names } = (await import(pathToFileURL(outfile).href)) as { names: string[] };

    // A warning means the installed ioredis no longer has the loop the plugin expects.
    expect(warnings).toEqual([]);
    expect(readFileSync(outfile, 'utf8').includes('.prototype.__dictionaryMode1=0'), 'the prototype made a dictionary').toBe(true);
    expect(names).toEqual(expect.arrayContaining(['get', 'getBuffer', 'evalsha', 'mget', 'call']));
    expect(names.filter((name) => name.includes('dictionaryMode'))).toEqual([]);
  });

  it('holds its table of Redis commands as JSON text for JSON.parse, answering every command as the package does', async () => {
    const entry = "export { list, exists, hasFlag, getKeyIndexes } from '@ioredis/commands';";
    const flagsIoredisReads = [...new Set(ioredisSources().flatMap((source) => [...source.matchAll(/hasFlag\)\([^,]+,\s*"([a-z_]+)"/g)].map((match) => match[1]!)))];

    const { outfile } = await bundleEntry('command-table', entry);
    const bundled = (await import(pathToFileURL(outfile).href)) as CommandTable;
    const installed = requireFromHere('@ioredis/commands') as CommandTable;

    expect(flagsIoredisReads.sort()).toEqual(['loading', 'readonly']);
    expect(readFileSync(outfile, 'utf8')).toMatch(/JSON\.parse\('\{"acl":/);
    expect(answersOf(bundled, flagsIoredisReads)).toEqual(answersOf(installed, flagsIoredisReads));
  });

  it('leaves out the Sentinel connector, and says so to a client that asks for Sentinel', async () => {
    const entry = `import { Redis } from 'ioredis';
      export function sentinelClient() {
        try { new Redis({ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'primary', lazyConnect: true }); return 'created'; }
        catch (error) { return error.message; }
      }`;

    const { outfile } = await bundleEntry('sentinel', entry);
    const { sentinelClient } = (await import(pathToFileURL(outfile).href)) as { sentinelClient: () => string };

    expect(sentinelClient()).toMatch(/Sentinel is not supported/);
    expect(readFileSync(outfile, 'utf8')).not.toContain('Requires at least one sentinel');
  });

  it('still connects to a Redis server and runs commands and scripts', async () => {
    const redis = await startStandaloneRedis();
    const entry = `import { Redis } from 'ioredis';
      export async function roundTrip(url) {
        const client = new Redis(url);
        try {
          await client.set('bundled:key', 'value');
          return [await client.get('bundled:key'), await client.eval('return ARGV[1]', 0, 'from a script')];
        } finally { client.disconnect(); }
      }`;

    try {
      const { outfile } = await bundleEntry('standalone', entry);
      const { roundTrip } = (await import(pathToFileURL(outfile).href)) as { roundTrip: (url: string) => Promise<string[]> };

      expect(await roundTrip(redis.url)).toEqual(['value', 'from a script']);
    } finally {
      await redis.stop();
    }
  });
});

describe("ioredis's Cluster client as bundled for Lambda", () => {
  it('is loaded when Cluster is first read, not when ioredis is imported and a standalone client made', async () => {
    const entry = `
      // node:dns is loaded by the cluster's options and by nothing else here.
      const loadedDns = () => process.moduleLoadList.includes('NativeModule dns');
      const ioredis = await import('ioredis');
      new ioredis.Redis({ lazyConnect: true }).disconnect();
      const afterStandalone = loadedDns();
      const Cluster = ioredis.Cluster;
      process.stdout.write(JSON.stringify({ afterStandalone, afterRead: loadedDns(), cluster: typeof Cluster, same: ioredis.default.Cluster === Cluster }));`;

    const { report, warnings } = await runBundled('cluster-on-first-use', entry);

    // A warning means the installed ioredis no longer has the lines the plugin rewrites.
    expect(warnings).toEqual([]);
    expect(report).toEqual({ afterStandalone: false, afterRead: true, cluster: 'function', same: true });
  });

  it('still runs commands and scripts on a Redis Cluster', async () => {
    const cluster = await startRedisCluster();
    const entry = `import { Cluster } from 'ioredis';
      export async function roundTrip(url) {
        const client = new Cluster([url]);
        try {
          await client.set('{bundled}:key', 'value');
          return [await client.get('{bundled}:key'), await client.eval('return redis.call("GET", KEYS[1])', 1, '{bundled}:key')];
        } finally { client.disconnect(); }
      }`;

    try {
      const { outfile } = await bundleEntry('cluster', entry);
      const { roundTrip } = (await import(pathToFileURL(outfile).href)) as { roundTrip: (url: string) => Promise<string[]> };

      expect(await roundTrip(cluster.url)).toEqual(['value', 'value']);
    } finally {
      await cluster.stop();
    }
  });
});

describe('assert as bundled for Lambda', () => {
  it("is not loaded when ioredis is imported, only when it is first used", async () => {
    const entry = `
      const loadedAssert = () => process.moduleLoadList.includes('NativeModule assert');
      const { Redis } = await import('ioredis');
      const afterImport = loadedAssert();
      const { ParserError } = await import('redis-errors');
      const error = new ParserError('bad reply', 'buffer', 3);
      process.stdout.write(JSON.stringify({ redis: typeof Redis, afterImport, afterUse: loadedAssert(), offset: error.offset }));`;

    const { report } = await runBundled('assert-on-first-use', entry);

    expect(report).toEqual({ redis: 'function', afterImport: false, afterUse: true, offset: 3 });
  });

  it("behaves as Node's assert: calls, methods and the errors they throw", async () => {
    const entry = `
      const assert = (await import('assert')).default;
      const thrown = (action) => { try { action(); return 'none'; } catch (error) { return error.name + ':' + error.code; } };
      process.stdout.write(JSON.stringify({
        ok: thrown(() => assert(true)),
        falsy: thrown(() => assert(0, 'zero')),
        strictEqual: thrown(() => assert.strictEqual(1, 2)),
        hasMethod: 'deepStrictEqual' in assert,
        isAssertionError: thrown(() => assert.fail('x')) === 'AssertionError:ERR_ASSERTION',
      }));`;

    const { report } = await runBundled('assert-behaviour', entry);

    expect(report).toEqual({
      ok: 'none',
      falsy: 'AssertionError:ERR_ASSERTION',
      strictEqual: 'AssertionError:ERR_ASSERTION',
      hasMethod: true,
      isAssertionError: true,
    });
  });
});

describe('the first request of a cold container', () => {
  const redis = useStandaloneRedis();
  let secrets: SecretsManagerDouble;
  beforeAll(async () => {
    secrets = await startSecretsManagerDouble();
  });
  afterAll(() => secrets.close());

  it('is not refused by the rate-limit deadline while the Redis URL is still being read from Secrets Manager', async () => {
    const email = uniqueEmail();
    const password = 'correct horse battery staple';
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14' });
    expect((await callRegister({ email, password })).statusCode).toBe(201);
    secrets.setSecret('cold/redis', redis.server.url);
    secrets.delayMs = 300; // longer than the 200 ms a rate-limit check may take
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: 'cold/redis', PASSWORD_SCRYPT_LOG2N: '14' });

    const response = await callLogin({ email, password });

    expect(response.statusCode).toBe(200);
  });
});

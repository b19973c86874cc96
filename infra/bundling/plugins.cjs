// The esbuild plugins of the Lambda bundles (custom.esbuild.plugins in infra/bundling/esbuild.json).
// Each takes work off every cold start or bundle; none changes what the code does for the Redis
// deployments this service supports. Figures: BENCHMARKS.md.
'use strict';

const { readFile } = require('node:fs/promises');
const path = require('node:path');
const { builtinModules } = require('node:module');

// builtins-by-require: `import { x } from 'node:fs'` in the bundle becomes `require('node:fs')`.
// When an ES module imports a Node built-in, Node builds an ESM facade of it that reads every
// export once, and some exports are lazy getters: reading `fs.promises` loads the promise API,
// readline and file streams; `crypto.webcrypto` loads WebCrypto. None of that is used here, and a
// cold start paid about 2 ms for it. require() hands over the module object as is, so a getter
// runs only if the code reads it. Imports by our dependencies' CommonJS code are require() calls
// already; dynamic import() is left as written.

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((name) => `node:${name}`)]);
const BUILTIN_NAMESPACE = 'builtin-by-require';

const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(build) {
    build.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      if (args.kind !== 'import-statement' || !BUILTINS.has(args.path)) return undefined;
      return { path: args.path, namespace: BUILTIN_NAMESPACE };
    });
    // A CommonJS module of one line: esbuild gives ESM importers its exports, read on use.
    build.onLoad({ filter: /.*/, namespace: BUILTIN_NAMESPACE }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

// ioredis-commands-in-dictionary-mode: ioredis defines its ~600 command methods (`get`,
// `getBuffer`, …) one by one on the prototype of its `Commander` class. V8 keeps a class
// prototype in fast mode while it grows, copying its descriptors on each addition, which makes
// the loop quadratic: about 6 ms of every cold start (a plain object takes 0.2 ms for the same).
// Adding two properties and deleting them first turns the prototype into a dictionary, where an
// addition is cheap; V8 makes it fast again when the class is first used. No property is left
// behind. If ioredis changes that file, the bundle is built unchanged, with a warning, and the
// bundling test fails (test/integration/cold-start.test.ts).

const COMMANDER_FILE = /[\\/]node_modules[\\/]ioredis[\\/]built[\\/]utils[\\/]Commander\.js$/;
const COMMANDS_LOOP = 'const commands = commands_1.list.filter(';
const DICTIONARY_MODE =
  'Commander.prototype.__dictionaryMode1 = 0; Commander.prototype.__dictionaryMode2 = 0;\n' +
  'delete Commander.prototype.__dictionaryMode1; delete Commander.prototype.__dictionaryMode2;\n';
const COMMANDS_WARNING = 'ioredis-commands-in-dictionary-mode: ioredis Commander.js no longer has the expected command loop; left as it is';

const ioredisCommandsInDictionaryMode = {
  name: 'ioredis-commands-in-dictionary-mode',
  setup(build) {
    build.onLoad({ filter: COMMANDER_FILE }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (source.split(COMMANDS_LOOP).length !== 2) return { contents: source, loader: 'js', warnings: [{ text: COMMANDS_WARNING }] };
      return { contents: source.replace(COMMANDS_LOOP, DICTIONARY_MODE + COMMANDS_LOOP), loader: 'js' };
    });
  },
};

// ioredis-command-table: of its table of Redis commands (@ioredis/commands, 43 KB of JSON),
// ioredis reads only whether a command exists, two of its flags (`readonly`, to route a read on a
// cluster, and `loading`, whether a command may run while the server loads its data) and, for the
// commands with keys, where the keys are (`keyStart`, `keyStop`, `step`, by subcommand). The
// table also holds every command's arity and a dozen other flags, which nothing reads: left out,
// about 24 KB less in every bundle. What remains (18 KB) becomes `JSON.parse('…')` rather than the
// object literal esbuild writes: V8 parses JSON text several times faster than it compiles and
// runs the same data as JavaScript. The bundling test checks that the table answers every command
// as the package's does, for every flag ioredis reads (test/integration/cold-start.test.ts).

const COMMAND_TABLE_FILE = /[\\/]node_modules[\\/]@ioredis[\\/]commands[\\/]built[\\/]commands\.json$/;
const COMMAND_FLAGS_READ = ['readonly', 'loading'];

/** What ioredis reads of one command; only a command's own flags are read, never a subcommand's. */
function trimmedCommand(command, isSubcommand) {
  const trimmed = {};
  if (!isSubcommand) trimmed.flags = command.flags.filter((flag) => COMMAND_FLAGS_READ.includes(flag));
  // Keys are looked for only where step > 0 (getKeyIndexes), which an absent step is not.
  if (command.step > 0) Object.assign(trimmed, { keyStart: command.keyStart, keyStop: command.keyStop, step: command.step });
  if (command.subcommands) {
    trimmed.subcommands = Object.fromEntries(Object.entries(command.subcommands).map(([name, subcommand]) => [name, trimmedCommand(subcommand, true)]));
  }
  return trimmed;
}

const ioredisCommandTable = {
  name: 'ioredis-command-table',
  setup(build) {
    build.onLoad({ filter: COMMAND_TABLE_FILE }, async (args) => {
      const table = JSON.parse(await readFile(args.path, 'utf8'));
      const trimmed = Object.fromEntries(Object.entries(table).map(([name, command]) => [name, trimmedCommand(command, false)]));
      return { contents: `module.exports = JSON.parse(${JSON.stringify(JSON.stringify(trimmed))});`, loader: 'js' };
    });
  },
};

// ioredis-without-sentinel: ioredis's Sentinel connector, which its index and its Redis class
// require although no deployment of these functions uses Sentinel, is replaced by
// sentinel-unsupported.cjs (which says why): about 7 KB of every bundle.

const IOREDIS_FILE = /[\\/]node_modules[\\/]ioredis[\\/]built[\\/]/;
const SENTINEL_UNSUPPORTED = path.join(__dirname, 'sentinel-unsupported.cjs');

const ioredisWithoutSentinel = {
  name: 'ioredis-without-sentinel',
  setup(build) {
    build.onResolve({ filter: /^\.{1,2}\/(connectors\/)?SentinelConnector$/ }, (args) =>
      IOREDIS_FILE.test(args.importer) ? { path: SENTINEL_UNSUPPORTED } : undefined,
    );
  },
};

// ioredis-cluster-on-first-use: ioredis's index and its Redis class require its Cluster client at
// import, with its options (which load node:dns), connection pool and subscribers: about 1 ms of
// every cold start, for a class that only `REDIS_CLUSTER=true` deployments use. Both places
// become getters that require it when `Cluster` is first read (shared/redis-client.ts reads it only for
// a cluster). If ioredis changes those lines, the file is bundled unchanged, with a warning, and
// the bundling test fails (test/integration/cold-start.test.ts).

const CLUSTER_ON_FIRST_USE = [
  {
    file: /[\\/]node_modules[\\/]ioredis[\\/]built[\\/]index\.js$/,
    replacements: [['var cluster_1 = require("./cluster");', 'var cluster_1 = { get default() { return require("./cluster").default; } };']],
  },
  {
    file: /[\\/]node_modules[\\/]ioredis[\\/]built[\\/]Redis\.js$/,
    replacements: [
      ['const cluster_1 = require("./cluster");', ''],
      // Configurable: ioredis's index defines its own getter of `Cluster` on the same class.
      [
        'Redis.Cluster = cluster_1.default;',
        'Object.defineProperty(Redis, "Cluster", { configurable: true, enumerable: true, get() { return require("./cluster").default; } });',
      ],
    ],
  },
];
const CLUSTER_WARNING = 'ioredis-cluster-on-first-use: ioredis no longer requires its Cluster as expected; left as it is';

const ioredisClusterOnFirstUse = {
  name: 'ioredis-cluster-on-first-use',
  setup(build) {
    for (const { file, replacements } of CLUSTER_ON_FIRST_USE) {
      build.onLoad({ filter: file }, async (args) => {
        let source = await readFile(args.path, 'utf8');
        if (replacements.some(([from]) => source.split(from).length !== 2)) return { contents: source, loader: 'js', warnings: [{ text: CLUSTER_WARNING }] };
        for (const [from, to] of replacements) source = source.replace(from, () => to);
        return { contents: source, loader: 'js' };
      });
    }
  },
};

// package-version-only: shared/config.ts imports the project's package.json for its `version`
// (what GET /health answers); esbuild would bundle the whole file, dependency lists and scripts
// included, into every function: about 1.3 KB of each. The bundles get `{ "version" }` alone.

const PROJECT_PACKAGE_JSON = path.join(__dirname, '..', '..', 'package.json');

const packageVersionOnly = {
  name: 'package-version-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]package\.json$/ }, async (args) => {
      if (path.resolve(args.path) !== PROJECT_PACKAGE_JSON) return undefined;
      const { version } = JSON.parse(await readFile(args.path, 'utf8'));
      return { contents: JSON.stringify({ version }), loader: 'json' };
    });
  },
};

module.exports = [builtinsByRequire, ioredisCommandsInDictionaryMode, packageVersionOnly, ioredisCommandTable, ioredisWithoutSentinel, ioredisClusterOnFirstUse];

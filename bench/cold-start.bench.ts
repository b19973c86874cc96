// Cold start: bundle size and init time of every function, beside the peer composition
// (bench/peer/) built with the same esbuild settings as serverless.yml, measured in the same run.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { startRedisServer } from '../infra/local/redis-server.ts';
import { startSecretsManagerDouble } from '../test/doubles/secrets-manager.ts';
import { machineLine, median, writeSection } from './report.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = `${root}bench/.out/`;
const RUNS = 15;

/** The settings of `custom.esbuild` in serverless.yml. */
async function bundle(entry: string, name: string): Promise<string> {
  const outfile = `${outDir}${name}.mjs`;
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    minify: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    mainFields: ['module', 'main'],
    external: ['@aws-sdk/*'],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'error',
  });
  return outfile;
}

/** Environment of the measured processes: a local Secrets Manager holding a local Redis URL. */
let childEnv: NodeJS.ProcessEnv = {};

/**
 * Time from process start to the handler module imported (the handler ready), in ms, reported by
 * the child itself. Asynchronous spawn: the Secrets Manager double in this process must stay able
 * to answer the peer's prefetch.
 */
async function importTime(file: string | undefined): Promise<number> {
  const script =
    file === undefined
      ? 'console.log(performance.now())'
      : `await import(${JSON.stringify(file)}); console.log(performance.now()); process.exit(0)`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`importing ${file} failed`);
  return Number(output.trim().split('\n').pop());
}

interface Measured {
  name: string;
  kilobytes: number;
  initMs: number[];
}

function formatRow(ours: Measured, peer: Measured | undefined, bare: number): string {
  const init = median(ours.initMs) - bare;
  const range = `${(Math.min(...ours.initMs) - bare).toFixed(0)}–${(Math.max(...ours.initMs) - bare).toFixed(0)}`;
  const peerCells = peer
    ? `${peer.kilobytes.toFixed(0)} KB | ${(median(peer.initMs) - bare).toFixed(0)} ms | ${(ours.kilobytes / peer.kilobytes).toFixed(2)}× | ${(init / (median(peer.initMs) - bare)).toFixed(2)}×`
    : '— | — | — | —';
  return `| ${ours.name} | ${ours.kilobytes.toFixed(0)} KB | ${init.toFixed(0)} ms (${range}) | ${peerCells} |`;
}

async function main(): Promise<void> {
  const redis = await startRedisServer();
  const secrets = await startSecretsManagerDouble();
  secrets.setSecret('redis', redis.url);
  // The peer's secrets middleware fetches at init (its prefetch), so the secret must be readable.
  childEnv = { ...process.env, ...secrets.env, REDIS_SECRET_ID: 'redis', LOG_LEVEL: 'error' };
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const functions = readdirSync(`${root}functions`).filter((file) => file.endsWith('.ts')).map((file) => file.slice(0, -3));
  const peers = readdirSync(`${root}bench/peer`).filter((file) => file.endsWith('.ts') && file !== 'common.ts').map((file) => file.slice(0, -3));

  const targets: Array<{ name: string; file: string }> = [];
  for (const name of functions) targets.push({ name, file: await bundle(`${root}functions/${name}.ts`, name) });
  for (const name of peers) targets.push({ name: `peer-${name}`, file: await bundle(`${root}bench/peer/${name}.ts`, `peer-${name}`) });

  const bareRuns: number[] = [];
  const measured = new Map<string, Measured>(targets.map(({ name, file }) => [name, { name, kilobytes: statSync(file).size / 1024, initMs: [] }]));
  // Interleaved rounds: a noisy moment hits every target alike.
  for (let round = 0; round < RUNS; round += 1) {
    bareRuns.push(await importTime(undefined));
    for (const { name, file } of targets) measured.get(name)!.initMs.push(await importTime(file));
  }
  const bare = median(bareRuns);

  const peerFor: Record<string, string> = { chat: 'peer-chat', embeddings: 'peer-embeddings', 'auth-login': 'peer-login' };
  const rows = functions.map((name) => formatRow(measured.get(name)!, measured.get(peerFor[name] ?? ''), bare));
  const markdown = `## Cold start: bundle size and init time

${machineLine()}. Bundles built with the settings of serverless.yml (esbuild, minified, ESM, AWS SDK
left to the runtime). Init = \`performance.now()\` (time since process start) once \`await import(bundle)\` resolved,
minus the same in a bare \`node -e\` (median ${bare.toFixed(0)} ms), median of ${RUNS} interleaved runs (min–max). The
peer is the same handler assembled from popular parts (bench/peer/: full zod, @middy/secrets-manager,
rate-limiter-flexible, the full Anthropic / OpenAI SDKs, eager imports). Goals: every function
under 250 KB, chat under 300 KB, init under 45 ms above bare Node.

| function | bundle | init | peer bundle | peer init | bundle ratio | init ratio |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
  writeSection('cold-start', markdown);
  console.log(markdown);
  await secrets.close();
  await redis.stop();
}

await main();

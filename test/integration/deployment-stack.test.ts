// The stack `sls package` builds, offline, for each stage, and what a deploy relies on in it
// (runtime, stage defaults, the configuration passed on, log retention, the Redis connection
// budget, a secret-scoped IAM statement, the memory of the functions that hash passwords).
// Packaged from a copy of serverless.yml beside links to the sources, so that the build folder
// of serverless-esbuild never meets the one of a running `npm run dev`.

import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../functions/not-found.ts';
import { loadConfig, PASSWORD_SCRYPT_LOG2N } from '../../shared/config.ts';
import { projectRoot } from '../../infra/bundling/options.ts';

const SLS = join(projectRoot, 'node_modules/osls/bin/serverless.js');
const SOURCES = ['functions', 'shared', 'infra', 'node_modules', 'package.json', 'tsconfig.json'];
/** Lambda's memory at which a function has one full vCPU (CPU is given in proportion to memory). */
const ONE_VCPU_MB = 1769;
/** What a function needs beside a scrypt derivation's memory: Node, the bundle, the heap. */
const NODE_ROOM_MB = 256;
const EXISTING_SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tutor/redis-AbCdEf';

/**
 * What shared/config.ts reads but a deploy does not pass on: a URL and paths on the developer's
 * machine, and the switch that allows plain-text Redis in prod (written in serverless.yml if ever).
 */
const LOCAL_ONLY = new Set(['REDIS_URL', 'REDIS_TLS_CA_FILE', 'CHAT_SYSTEM_PROMPT_FILE', 'REDIS_ALLOW_PLAINTEXT']);

/** Every variable shared/config.ts reads, the ones only a remote provider reads included. */
function variablesConfigReads(): string[] {
  const read = new Set<string>();
  const env: Record<string, string | undefined> = {
    CHAT_PROVIDER: 'anthropic',
    ANTHROPIC_API_KEY: 'a-key',
    EMBEDDINGS_PROVIDER: 'openai',
    EMBEDDINGS_BASE_URL: 'http://127.0.0.1:1',
  };
  loadConfig(
    new Proxy(env, {
      get: (target, name) => {
        if (typeof name === 'string') read.add(name);
        return typeof name === 'string' ? target[name] : undefined;
      },
    }),
  );
  return [...read];
}

/** Functions that never open a Redis connection (they hold none of the connection budget). */
const WITHOUT_REDIS = new Set(['NotFoundLambdaFunction']);

interface Resource {
  Type: string;
  Properties: Record<string, any>;
  DependsOn?: string | string[];
}
type Template = { Resources: Record<string, Resource> };

let workDir: string;

const outDirOf = (stage: string, extra = 0) => join(workDir, `out-${stage}-${extra}`);

function packageStack(stage: string, ...extra: string[]): Promise<Template> {
  const out = outDirOf(stage, extra.length);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SLS, 'package', '--stage', stage, '--package', out, ...extra], { cwd: workDir }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`sls package --stage ${stage} failed: ${stdout}${stderr}`));
      resolve(JSON.parse(readFileSync(join(out, 'cloudformation-template-update-stack.json'), 'utf8')) as Template);
    });
  });
}

/** The files of a zip archive by name (stored or deflated entries, as the packaging writes them). */
function filesOfZip(path: string): Map<string, Buffer> {
  const zip = readFileSync(path);
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const files = new Map<string, Buffer>();
  for (let entry = zip.readUInt32LE(end + 16), n = zip.readUInt16LE(end + 10); n > 0; n -= 1) {
    const [method, size, nameLength, extraLength, commentLength, local] = [10, 20, 28, 30, 32, 42].map((at) =>
      at === 20 || at === 42 ? zip.readUInt32LE(entry + at) : zip.readUInt16LE(entry + at),
    ) as [number, number, number, number, number, number];
    const name = zip.toString('utf8', entry + 46, entry + 46 + nameLength);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + size);
    files.set(name, method === 8 ? inflateRawSync(data) : data);
    entry += 46 + nameLength + extraLength + commentLength;
  }
  return files;
}

const resourcesOf = (template: Template, type: string) => Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
const functionsOf = (template: Template) => resourcesOf(template, 'AWS::Lambda::Function');

function secretStatements(template: Template): Array<Record<string, any>> {
  const [[, role]] = resourcesOf(template, 'AWS::IAM::Role') as [[string, Resource]];
  return (role.Properties['Policies'] as Array<{ PolicyDocument: { Statement: Array<Record<string, any>> } }>)
    .flatMap((policy) => policy.PolicyDocument.Statement)
    .filter((statement) => JSON.stringify(statement.Action).includes('secretsmanager'));
}

describe('the packaged stack', () => {
  let dev: Template;
  let prod: Template;
  let prodWithExistingSecret: Template;

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'tutor-stack-'));
    for (const source of SOURCES) symlinkSync(join(projectRoot, source), join(workDir, source));
    copyFileSync(join(projectRoot, 'serverless.yml'), join(workDir, 'serverless.yml'));
    // One after the other: the packagings share the build folder of the copy.
    dev = await packageStack('dev');
    prod = await packageStack('prod');
    prodWithExistingSecret = await packageStack('prod', `--param=redisSecretArn=${EXISTING_SECRET}`);
  }, 120_000);
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  it('runs every function on nodejs22.x with its stage and the stage\'s cache TTL (1 h dev, 6 h prod)', () => {
    for (const [template, stage, ttl] of [[dev, 'dev', '3600'], [prod, 'prod', '21600']] as const) {
      const functions = functionsOf(template);
      expect(functions.length).toBeGreaterThan(0);
      for (const [, lambda] of functions) {
        expect(lambda.Properties['Runtime']).toBe('nodejs22.x');
        expect(lambda.Properties['Environment'].Variables).toMatchObject({ STAGE: stage, CACHE_TTL_SECONDS: ttl });
      }
    }
  });

  it('reserves concurrency so that Redis connections stay within about 10 in dev and 100 in prod', () => {
    const connections = (template: Template) =>
      functionsOf(template)
        .filter(([name]) => !WITHOUT_REDIS.has(name))
        .map(([name, lambda]) => {
          expect(lambda.Properties['ReservedConcurrentExecutions'], name).toBeGreaterThan(0);
          return lambda.Properties['ReservedConcurrentExecutions'] as number;
        })
        .reduce((sum, reserved) => sum + reserved, 0);

    expect(connections(dev)).toBeLessThanOrEqual(10);
    expect(connections(prod)).toBeLessThanOrEqual(100);
  });

  it('reserves in each stage the total concurrency the README asks the account to have room for', () => {
    const reserved = (template: Template) =>
      functionsOf(template).reduce((sum, [, lambda]) => sum + (lambda.Properties['ReservedConcurrentExecutions'] as number), 0);
    const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8').replace(/\s+/g, ' ');

    expect(readme).toContain(`reserves ${reserved(dev)} concurrent executions in dev and ${reserved(prod)} in prod`);
  });

  it('gives the functions that derive a password hash one full vCPU and room for the costliest derivation allowed', () => {
    const derivationMb = (128 * 2 ** PASSWORD_SCRYPT_LOG2N.max * 8) / 2 ** 20;
    const hashing = functionsOf(prod).filter(([, lambda]) => 'PASSWORD_SCRYPT_LOG2N' in lambda.Properties['Environment'].Variables);

    expect(hashing.map(([name]) => name).sort()).toEqual(['AuthLoginLambdaFunction', 'AuthRegisterLambdaFunction']);
    for (const [name, lambda] of hashing) {
      expect(lambda.Properties['MemorySize'], name).toBeGreaterThanOrEqual(ONE_VCPU_MB);
      expect(lambda.Properties['MemorySize'] - derivationMb, name).toBeGreaterThanOrEqual(NODE_ROOM_MB);
    }
  });

  it('declares exactly the routes the catch-all knows (its 405s name the methods of each path)', () => {
    const declared = resourcesOf(prod, 'AWS::ApiGatewayV2::Route').map(([, route]) => route.Properties['RouteKey'] as string);
    const known = Object.entries(ROUTES).flatMap(([path, methods]) => methods.map((method) => `${method} ${path}`));

    expect(declared.filter((key) => key !== '$default').sort()).toEqual(known.sort());
    expect(declared).toContain('$default');
  });

  it('lets browsers read the headers the contract answers with (API Gateway answers for CORS)', () => {
    const [[, api]] = resourcesOf(prod, 'AWS::ApiGatewayV2::Api') as [[string, Resource]];

    expect(api.Properties['CorsConfiguration'].ExposeHeaders).toEqual(
      expect.arrayContaining(['RateLimit', 'RateLimit-Policy', 'Retry-After', 'X-Cache', 'X-Cache-Hits', 'WWW-Authenticate', 'Allow']),
    );
  });

  it('passes every variable shared/config.ts reads on to the functions, except the four for local use', () => {
    const deployed = new Set(functionsOf(prod).flatMap(([, lambda]) => Object.keys(lambda.Properties['Environment'].Variables)));
    const read = variablesConfigReads();

    expect(read).toContain('RATE_LIMIT_CHAT');
    expect(read.filter((name) => !LOCAL_ONLY.has(name) && !deployed.has(name))).toEqual([]);
  });

  it('ships each bundle with its source map beside it, which no cold start loads: not linked, no --enable-source-maps', () => {
    for (const [name, lambda] of functionsOf(prod)) {
      const zip = filesOfZip(join(outDirOf('prod'), (lambda.Properties['Code'].S3Key as string).split('/').pop()!));
      const bundle = `${(lambda.Properties['Handler'] as string).replace(/\.[^.]+$/, '')}.mjs`;

      expect([...zip.keys()].sort(), name).toEqual([bundle, `${bundle}.map`]);
      expect(zip.get(bundle)!.toString('utf8'), name).not.toContain('sourceMappingURL');
      expect(lambda.Properties['Environment'].Variables['NODE_OPTIONS'] ?? '', name).not.toContain('--enable-source-maps');
    }
  });

  it('keeps logs 14 days in dev and 90 days in prod', () => {
    const retention = (template: Template) => new Set(resourcesOf(template, 'AWS::Logs::LogGroup').map(([, group]) => group.Properties['RetentionInDays']));

    expect(retention(dev)).toEqual(new Set([14]));
    expect(retention(prod)).toEqual(new Set([90]));
  });

  it('logs every request API Gateway answers, its own refusals included, kept as long as the functions\' logs', () => {
    for (const [template, days] of [[dev, 14], [prod, 90]] as const) {
      const [[, stage]] = resourcesOf(template, 'AWS::ApiGatewayV2::Stage') as [[string, Resource]];
      const destination = stage.Properties['AccessLogSettings']?.DestinationArn?.['Fn::GetAtt']?.[0] as string;

      expect(template.Resources[destination]?.Type).toBe('AWS::Logs::LogGroup');
      expect(template.Resources[destination]!.Properties['RetentionInDays']).toBe(days);
      expect(JSON.parse(stage.Properties['AccessLogSettings'].Format)).toMatchObject({ requestId: '$context.requestId', status: '$context.status' });
    }
  });

  it('throttles the stage at API Gateway, and the public routes that hash a password to what their functions can run at once', () => {
    for (const template of [dev, prod]) {
      const [[, stage]] = resourcesOf(template, 'AWS::ApiGatewayV2::Stage') as [[string, Resource]];
      const defaults = stage.Properties['DefaultRouteSettings'];
      expect(defaults.ThrottlingRateLimit).toBeGreaterThan(0);
      expect(defaults.ThrottlingBurstLimit).toBeGreaterThan(0);

      for (const [routeKey, functionName] of [['POST /auth/login', 'AuthLoginLambdaFunction'], ['POST /auth/register', 'AuthRegisterLambdaFunction']] as const) {
        const route = resourcesOf(template, 'AWS::ApiGatewayV2::Route').find(([, resource]) => resource.Properties['RouteKey'] === routeKey)!;
        const throttle = stage.Properties['RouteSettings']?.[routeKey];
        expect(throttle?.ThrottlingRateLimit, routeKey).toBeLessThan(defaults.ThrottlingRateLimit);
        expect(throttle.ThrottlingBurstLimit, routeKey).toBeLessThanOrEqual(template.Resources[functionName]!.Properties['ReservedConcurrentExecutions']);
        // A stage naming a route that does not exist yet fails to deploy.
        expect([stage.DependsOn].flat(), routeKey).toContain(route[0]);
      }
    }
  });

  it('allows GetSecretValue on the Redis secret only: the one the stack creates, or the one named', () => {
    const created = secretStatements(prod);
    const named = secretStatements(prodWithExistingSecret);

    expect(created).toEqual([{ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: { 'Fn::If': ['CreateRedisSecret', { Ref: 'RedisSecret' }, ''] } }]);
    expect(named).toEqual([{ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: { 'Fn::If': ['CreateRedisSecret', { Ref: 'RedisSecret' }, EXISTING_SECRET] } }]);
    for (const [, lambda] of functionsOf(prodWithExistingSecret)) {
      expect(lambda.Properties['Environment'].Variables['REDIS_SECRET_ID']).toEqual(named[0]!['Resource']);
    }
  });
});

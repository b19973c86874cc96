// Reading a secret from a local stand-in for Secrets Manager: one request signed with temporary
// credentials, retries and time-outs, the AWS SDK when credentials come from a profile, and HTTPS
// with a trusted or an untrusted certificate.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getSecret } from '../../shared/secrets.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { useEnvironment } from '../support/env.ts';
import { problemOf } from '../support/problems.ts';
import { makeTlsMaterial, type TlsMaterial } from '../support/redis.ts';
import { startSilentServer, type SilentServer } from '../support/tcp-proxy.ts';

/** A Lambda's environment: the role's temporary credentials and the region. */
function lambdaCredentials(secrets: SecretsManagerDouble): Record<string, string> {
  return { ...secrets.env, AWS_SESSION_TOKEN: 'FwoGZXIvYXdzELAMBDASESSIONTOKEN==' };
}

/** getSecret(id) in a fresh process with `env` (NODE_EXTRA_CA_CERTS is read at process start only). */
function getSecretInChild(id: string, env: Record<string, string>): Promise<string> {
  const module = new URL('../../shared/secrets.ts', import.meta.url).href;
  const script = `const { getSecret } = await import(${JSON.stringify(module)}); process.stdout.write(await getSecret(${JSON.stringify(id)}));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(stdout),
    );
  });
}

describe('reading a secret from Secrets Manager', () => {
  let secrets: SecretsManagerDouble;
  beforeAll(async () => {
    secrets = await startSecretsManagerDouble();
  });
  beforeEach(() => {
    secrets.failing = false;
    secrets.failNext(0);
    secrets.delayMs = 0;
  });
  afterAll(async () => {
    await useEnvironment({});
    await secrets.close();
  });

  it('signs one request with the temporary credentials of the environment, session token included', async () => {
    secrets.setSecret('app/redis', 'redis://127.0.0.1:6379');
    await useEnvironment(lambdaCredentials(secrets));

    const value = await getSecret('app/redis');

    expect(value).toBe('redis://127.0.0.1:6379');
    expect(secrets.reads('app/redis')).toBe(1);
    expect(secrets.lastHeaders?.['authorization']).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST\/\d{8}\/eu-west-1\/secretsmanager\/aws4_request, SignedHeaders=[a-z0-9;-]*x-amz-security-token[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
    );
    expect(secrets.lastHeaders?.['x-amz-security-token']).toBe('FwoGZXIvYXdzELAMBDASESSIONTOKEN==');
    expect(secrets.lastHeaders?.['x-amz-target']).toBe('secretsmanager.GetSecretValue');
  });

  it('waits for an answer that takes its time, within the time-out', async () => {
    secrets.setSecret('app/slow', 'redis://slow:6379');
    await useEnvironment(lambdaCredentials(secrets));
    secrets.delayMs = 300;

    const value = await getSecret('app/slow');

    expect(value).toBe('redis://slow:6379');
    expect(secrets.reads('app/slow')).toBe(1);
  });

  it('tries a second time after a server error, and answers', async () => {
    secrets.setSecret('app/flaky', 'redis://flaky:6379');
    await useEnvironment(lambdaCredentials(secrets));
    secrets.failNext(1);

    const value = await getSecret('app/flaky');

    expect(value).toBe('redis://flaky:6379');
  });

  it('gives up with a 503 problem after two server errors, naming the error in its cause', async () => {
    secrets.setSecret('app/down', 'redis://down:6379');
    await useEnvironment(lambdaCredentials(secrets));
    secrets.failNext(2);

    const problem = await problemOf(getSecret('app/down'));

    expect(problem.status).toBe(503);
    expect((problem.cause as Error).message).toBe('GetSecretValue failed (InternalServiceError)');
  });

  it('does not try again when access is denied', async () => {
    secrets.setSecret('app/forbidden', 'redis://forbidden:6379');
    secrets.denyAccess('app/forbidden');
    await useEnvironment(lambdaCredentials(secrets));

    const problem = await problemOf(getSecret('app/forbidden'));

    expect(problem.status).toBe(503);
    expect((problem.cause as Error).message).toBe('GetSecretValue failed (AccessDeniedException)');
    expect(secrets.reads('app/forbidden')).toBe(1);
  });

  it('reads through the AWS SDK when the credentials come from a profile rather than the environment', async () => {
    secrets.setSecret('app/profile', 'redis://profile:6379');
    const folder = mkdtempSync(join(tmpdir(), 'aws-profile-'));
    writeFileSync(join(folder, 'credentials'), '[bench]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n');
    await useEnvironment({
      ...secrets.env,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_SHARED_CREDENTIALS_FILE: join(folder, 'credentials'),
      AWS_CONFIG_FILE: join(folder, 'config'),
      AWS_PROFILE: 'bench',
    });

    const value = await getSecret('app/profile');

    expect(value).toBe('redis://profile:6379');
    expect(secrets.lastHeaders?.['authorization']).toContain('Credential=AKIDPROFILE/');
  });

  describe('over HTTPS, as in AWS', () => {
    let tls: TlsMaterial;
    let server: ReturnType<typeof createHttpsServer>;
    let endpoint: string;
    beforeAll(async () => {
      tls = makeTlsMaterial();
      server = createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (request, response) => {
        request.resume();
        request.on('end', () => {
          response.writeHead(200, { 'Content-Type': 'application/x-amz-json-1.1' });
          response.end(JSON.stringify({ Name: 'app/tls', SecretString: 'rediss://tls.example:6380' }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      endpoint = `https://localhost:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('reads the secret from a server whose certificate names the endpoint and is trusted', async () => {
      const value = await getSecretInChild('app/tls', {
        ...lambdaCredentials(secrets),
        AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint,
        NODE_EXTRA_CA_CERTS: tls.ca,
      });

      expect(value).toBe('rediss://tls.example:6380');
    });

    it('refuses a server whose certificate it does not trust, with a 503 problem', async () => {
      await useEnvironment({ ...lambdaCredentials(secrets), AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint });

      const problem = await problemOf(getSecret('app/tls'));

      expect(problem.status).toBe(503);
      expect((problem.cause as Error).message).toMatch(/^GetSecretValue failed \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)$/);
    });
  });

  describe('when Secrets Manager accepts connections and never answers', () => {
    let silent: SilentServer;
    beforeAll(async () => {
      silent = await startSilentServer();
    });
    afterAll(() => silent.close());

    it('answers a 503 problem within about a second', async () => {
      await useEnvironment({ ...lambdaCredentials(secrets), AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${silent.port}` });
      const started = Date.now();

      const problem = await problemOf(getSecret('app/silent'));

      expect(problem.status).toBe(503);
      expect((problem.cause as Error).message).toBe('GetSecretValue failed (TimeoutError)');
      expect(Date.now() - started).toBeLessThan(2500); // two attempts of 0.5 s of silence; a hang would reach the test time-out
    });
  });
});

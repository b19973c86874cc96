// AWS Signature Version 4 signing: the AWS documentation's example gets its published
// signature, and a GetSecretValue call is signed exactly as the AWS SDK's signer does it.

import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { signRequest } from '../../shared/aws/sigv4.ts';

type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: SourceData): string | Buffer {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
}

/** The hash the SDK's signer is built with, from node:crypto. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

describe('AWS Signature Version 4', () => {
  it('signs the example request of the AWS documentation to its published signature', () => {
    const headers = signRequest({
      method: 'GET',
      host: 'iam.amazonaws.com',
      path: '/',
      query: 'Action=ListUsers&Version=2010-05-08',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: '',
      region: 'us-east-1',
      service: 'iam',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
      date: new Date('2015-08-30T12:36:00Z'),
    });

    expect(headers['authorization']).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
    );
  });

  it('signs a GetSecretValue call with temporary credentials exactly as the AWS SDK signer does', async () => {
    const credentials = { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'example/secret+key', sessionToken: 'FwoGZXIvYXdzEXAMPLE//token==' };
    const date = new Date('2026-03-01T08:09:10Z');
    const body = JSON.stringify({ SecretId: 'prod/redis' });
    const host = 'secretsmanager.eu-west-1.amazonaws.com';
    // The optional x-amz-content-sha256 header is left out, as for the JSON services.
    const sdkSigner = new SignatureV4({ credentials, region: 'eu-west-1', service: 'secretsmanager', sha256: NodeSha256, applyChecksum: false });

    const ours = signRequest({
      method: 'POST',
      host,
      path: '/',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.GetSecretValue' },
      body,
      region: 'eu-west-1',
      service: 'secretsmanager',
      credentials,
      date,
    });
    const sdk = await sdkSigner.sign(
      {
        method: 'POST',
        protocol: 'https:',
        hostname: host,
        path: '/',
        headers: { host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.GetSecretValue' },
        body,
      },
      { signingDate: date },
    );

    expect(ours['authorization']).toBe(sdk.headers['authorization']);
    expect(ours['x-amz-security-token']).toBe(credentials.sessionToken);
  });
});

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricOptStack } from '../../lib/metricopt-stack.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { tempStore, urlEvent } from '../value-api/fixtures.js';
import { cdkApp } from './synth-fixtures.js';

type Handler = (
  event: unknown,
  context: unknown,
) => Promise<{
  statusCode: number;
  body: string;
  isBase64Encoded: boolean;
  headers: Record<string, string>;
}>;

/**
 * The artifact `cdk deploy` would upload: the stack is synthesized (esbuild bundles
 * functions/value-api/lambda.ts), and the bundle itself answers function URL events, so a
 * bundling problem (a dependency that does not survive ESM bundling, a missing module) fails
 * here rather than in AWS.
 */
describe('the value API bundle from cdk synth', () => {
  let outdir: string;
  let fixture: Awaited<ReturnType<typeof tempStore>>;
  let handler: Handler;

  beforeAll(async () => {
    outdir = mkdtempSync(join(tmpdir(), 'metricopt-cdk-'));
    fixture = await tempStore([{ id: 'bundled', d: 16, seed: 5 }]);
    const app = cdkApp(outdir);
    const stack = new MetricOptStack(app, 'Bundle');
    const assembly = app.synth();
    // The value API's code asset: the folder named by the hash in its function's S3 key.
    const fn = Template.fromStack(stack).findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: { METRICOPT_AUTH: 'iam' } } },
    });
    const keys = Object.values(fn).map((f) => String(f.Properties.Code.S3Key));
    expect(keys).toHaveLength(1);
    const assets = readdirSync(assembly.directory)
      .filter((name) => name.startsWith('asset.') && keys[0]?.startsWith(name.slice('asset.'.length)))
      .map((name) => join(assembly.directory, name, 'index.mjs'))
      .filter((file) => existsSync(file));
    expect(assets).toHaveLength(1);
    process.env.METRICOPT_STORE = fixture.dir;
    process.env.METRICOPT_AUTH = 'iam';
    handler = ((await import(pathToFileURL(assets[0] as string).href)) as { handler: Handler }).handler;
  });

  afterAll(async () => {
    rmSync(outdir, { recursive: true, force: true });
    await fixture.cleanup();
  });

  it('answers JSON and binary gradient requests with the value function in the store', async () => {
    const phi = Array.from({ length: 16 }, (_, i) => Math.cos(i));
    const compiled = new CompiledValueFunction(fixture.saved[0] as ValueFunctionCheckpoint);
    const expected = new Float32Array(16);
    compiled.valueAndGradient(Float32Array.from(phi), expected);

    const json = await handler(urlEvent('/v1/value-functions/bundled/gradient', { phi }, true), {});
    expect(json.statusCode).toBe(200);
    const body = JSON.parse(json.body) as { gradients: number[][]; version: number };
    expect(body.version).toBe(1);
    expect(Float32Array.from(body.gradients[0] as number[])).toEqual(expected);

    const binaryEvent = urlEvent('/v1/value-functions/bundled/gradient', null, true);
    binaryEvent.headers['content-type'] = 'application/octet-stream';
    binaryEvent.body = Buffer.from(Float32Array.from(phi).buffer).toString('base64');
    binaryEvent.isBase64Encoded = true;
    const binary = await handler(binaryEvent, {});
    expect(binary.statusCode).toBe(200);
    expect(binary.isBase64Encoded).toBe(true);
    const out = new Float32Array(new Uint8Array(Buffer.from(binary.body, 'base64')).buffer);
    expect(out.subarray(1)).toEqual(expected);
  });

  it('answers errors as JSON', async () => {
    const wrong = await handler(urlEvent('/v1/value-functions/bundled/predict', { phi: [1, 2] }, true), {});
    expect(wrong.statusCode).toBe(400);
    expect(JSON.parse(wrong.body)).toMatchObject({ error: { code: 'DIMENSION_MISMATCH' } });
  });
});

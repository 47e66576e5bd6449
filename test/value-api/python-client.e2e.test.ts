import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../functions/value-api/node.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { SECRET_KEY, startKeyedServer, tempStore } from './fixtures.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const D = 16;

let fixture: Awaited<ReturnType<typeof tempStore>>;
let server: RunningServer;
let checkpoint: ValueFunctionCheckpoint;

beforeAll(async () => {
  fixture = await tempStore([{ id: 'a9a-mcr', d: D, seed: 4, metric: { name: 'mcr', direction: 'minimize' } }]);
  checkpoint = fixture.saved[0] as ValueFunctionCheckpoint;
  server = await startKeyedServer(fixture.store, 64);
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

describe('Python client (standard library only)', () => {
  it('calls every route against the server and gets the right answers', async () => {
    const { stdout } = await run('python3', [
      join(root, 'clients/python/check_client.py'),
      server.url,
      SECRET_KEY,
      'a9a-mcr',
      String(D),
    ]);
    const seen = JSON.parse(stdout) as {
      predict: { values: number[]; version: number };
      gradient: number[];
      dimensionError: string;
      localErrors: Record<string, [string, string]>;
      invalidResponse: [number, string, string];
    };
    const phi = Float32Array.from({ length: D }, (_, i) => Math.sin(i + 1));
    const compiled = new CompiledValueFunction(checkpoint);
    const g = new Float32Array(D);
    const value = compiled.valueAndGradient(phi, g);
    expect(seen.predict.version).toBe(1);
    expect(seen.predict.values[0]).toBeCloseTo(value, 6);
    expect(Float32Array.from(seen.gradient)).toEqual(g);
    expect(seen.dimensionError).toBe("predict: phi has 15 entries, value function 'a9a-mcr' expects 16");
    // Bad local input is a ValueApiError (status 0) with the server's code, not a plain ValueError.
    expect(seen.localErrors).toEqual({
      nan: ['NOT_FINITE', 'predict: phi[0] is nan; JSON cannot carry it'],
      'inf in a loss gradient': ['NOT_FINITE', 'guide: lossGradients[1][0] is inf; JSON cannot carry it'],
      'not a number': ['INVALID_INPUT', "gradient: phi[1][0] is 'x', not a number"],
      'beyond float32': ['NOT_FINITE', 'binary: value 1e+39 is beyond the float32 range'],
      'ragged rows': ['DIMENSION_MISMATCH', 'gradient_binary: rows must all have the same length >= 1, got [15, 16]'],
      'rows not sequences': ['INVALID_INPUT', 'binary: rows must be a sequence of n rows of d numbers'],
    });
    expect(seen.invalidResponse).toEqual([
      200,
      'INVALID_RESPONSE',
      "GET /healthz: HTTP 200 with a body that is not JSON: '<html>proxy login</html>'",
    ]);
  });
});

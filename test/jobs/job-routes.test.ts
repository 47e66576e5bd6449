import { describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { type JobStatus, jobStatusResponseSchema, jobStatusSchema } from '../../shared/schemas/job.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { SECRET_KEY, tempStore } from '../value-api/fixtures.js';

const status: JobStatus = {
  format: 'metricopt.job-status',
  schemaVersion: 1,
  jobId: 'job-1',
  state: 'running',
  stage: 'trajectories',
  tasks: { done: 400, total: 5000 },
  evaluations: { total: 25000, sent: 1200, returned: 1190, failed: 10 },
  heldOut: null,
  etaSeconds: 81.5,
  backend: 'wasm',
  lastError: null,
  valueFunction: null,
  startedAt: '2026-12-02T00:00:00.000Z',
  updatedAt: '2026-12-02T00:01:00.000Z',
};

describe('GET /v1/jobs/{id}', () => {
  it("answers the job's status document, 404 for an unknown job, 400 for a bad id, 401 without a key", async () => {
    const fixture = await tempStore([{ id: 'vf', d: 4, seed: 1, metric: { name: 'mcr', direction: 'minimize' } }]);
    try {
      await fixture.store.put(jobKeys('job-1').status, JSON.stringify(status));
      const open = buildValueApi({
        store: fixture.store,
        auth: { mode: 'none' },
        maxBodyBytes: 1024,
        maxRows: 8,
        refreshMs: 0,
      }).app;
      const ok = await open.request('/v1/jobs/job-1');
      expect(ok.status).toBe(200);
      expect(jobStatusSchema.parse(await ok.json())).toEqual(status);

      const missing = await open.request('/v1/jobs/nope');
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ error: { code: 'JOB_NOT_FOUND' } });
      const bad = await open.request('/v1/jobs/..%2Fetc');
      expect(bad.status).toBe(400);
      const post = await open.request('/v1/jobs/job-1', { method: 'POST' });
      expect(post.status).toBe(405);

      const doc = (await (await open.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
      expect(Object.keys(doc.paths)).toContain('/v1/jobs/{id}');

      const guarded = buildValueApi({
        store: fixture.store,
        auth: { mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] },
        maxBodyBytes: 1024,
        maxRows: 8,
        refreshMs: 0,
      }).app;
      expect((await guarded.request('/v1/jobs/job-1')).status).toBe(401);
      const keyed = await guarded.request('/v1/jobs/job-1', { headers: { authorization: `Bearer ${SECRET_KEY}` } });
      expect(keyed.status).toBe(200);
    } finally {
      await fixture.cleanup();
    }
  });

  it('shows a running job whose lease expired as stalled (its runner is gone), a live lease as running', async () => {
    const fixture = await tempStore([]);
    try {
      const lease = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();
      await fixture.store.put(
        jobKeys('killed').status,
        JSON.stringify({ ...status, jobId: 'killed', leaseExpiresAt: lease(-60_000) }),
      );
      await fixture.store.put(
        jobKeys('alive').status,
        JSON.stringify({ ...status, jobId: 'alive', leaseExpiresAt: lease(600_000) }),
      );
      const app = buildValueApi({
        store: fixture.store,
        auth: { mode: 'none' },
        maxBodyBytes: 1024,
        maxRows: 8,
        refreshMs: 0,
      }).app;
      const killed = jobStatusResponseSchema.parse(await (await app.request('/v1/jobs/killed')).json());
      expect(killed).toMatchObject({ jobId: 'killed', state: 'stalled', stage: 'trajectories' });
      const alive = jobStatusResponseSchema.parse(await (await app.request('/v1/jobs/alive')).json());
      expect(alive.state).toBe('running');
      // The document declares the state it answers.
      type Doc = {
        paths: Record<
          string,
          { get: { responses: { 200: { content: Record<string, { schema: { $ref: string } }> } } } }
        >;
        components: { schemas: Record<string, { properties: { state: { enum: string[] } } }> };
      };
      const doc = (await (await app.request('/openapi.json')).json()) as Doc;
      const ref = doc.paths['/v1/jobs/{id}']?.get.responses[200].content['application/json']?.schema.$ref ?? '';
      expect(doc.components.schemas[ref.split('/').at(-1) as string]?.properties.state.enum).toContain('stalled');
    } finally {
      await fixture.cleanup();
    }
  });
});

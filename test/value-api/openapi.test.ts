import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { SECRET_KEY } from './fixtures.js';

/**
 * The /openapi.json of the three auth modes as the value API served it before its routes were
 * declared with OpenAPIHono (issue 21), generated from that code; since then changed only where
 * an issue changed the API on purpose (issue 23: GET /v1/jobs/{id} answers JobStatusResponse,
 * whose state can be `stalled`; start and cancel take `{}` or no body, cancel answers 400 to
 * another body; guide's and the labels' descriptions state what the server checks). Constraints
 * added or tightened since are not in it: the test allows them.
 */
const before = JSON.parse(readFileSync(new URL('./fixtures/openapi-before.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;

/** Keywords whose addition states a constraint the server already enforces; nothing else may be added. */
const CONSTRAINTS = new Set([
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
]);

const UPPER_BOUNDS = new Set(['maximum', 'maxLength', 'maxItems', 'maxProperties']);
const LOWER_BOUNDS = new Set(['minimum', 'minLength', 'minItems', 'minProperties']);

/** Every difference between two documents other than an added or tightened constraint, one line each. */
function changes(old: unknown, now: unknown, at = ''): string[] {
  if (at === '.info.version') return [];
  const keyword = at.slice(at.lastIndexOf('.') + 1);
  if (typeof old === 'number' && typeof now === 'number') {
    if ((UPPER_BOUNDS.has(keyword) && now <= old) || (LOWER_BOUNDS.has(keyword) && now >= old)) return [];
  }
  if (typeof old !== 'object' || old === null || typeof now !== 'object' || now === null) {
    return Object.is(old, now) ? [] : [`${at}: ${JSON.stringify(old)} -> ${JSON.stringify(now)}`];
  }
  if (Array.isArray(old) !== Array.isArray(now)) return [`${at}: array and object`];
  const a = old as Record<string, unknown>;
  const b = now as Record<string, unknown>;
  const out: string[] = [];
  for (const key of Object.keys(a)) {
    out.push(...(key in b ? changes(a[key], b[key], `${at}.${key}`) : [`${at}.${key}: removed`]));
  }
  for (const key of Object.keys(b)) {
    if (!(key in a) && (Array.isArray(b) || !CONSTRAINTS.has(key))) out.push(`${at}.${key}: added`);
  }
  return out;
}

type AuthSetting = Parameters<typeof buildValueApi>[0]['auth'];
const settings: Record<string, AuthSetting> = {
  'api-key': { mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] },
  iam: { mode: 'iam' },
  none: { mode: 'none' },
};

async function documentOf(auth: AuthSetting): Promise<Record<string, unknown>> {
  // The document reads nothing from the store.
  const store = new FsObjectStore(join(tmpdir(), 'metricopt-openapi-test-unused'));
  const { app } = buildValueApi({ store, auth, maxBodyBytes: 1024, maxRows: 8, refreshMs: 1000 });
  return (await (await app.request('/openapi.json')).json()) as Record<string, unknown>;
}

describe('the OpenAPI document generated from the routes', () => {
  it.each(Object.keys(settings))(
    'keeps the paths, methods, schemas and statuses of the old document, adding only stated constraints (auth %s)',
    async (mode) => {
      const now = await documentOf(settings[mode] as AuthSetting);
      expect(changes(before[mode], now)).toEqual([]);
    },
  );

  it('states the constraints the server enforces on fit and training job ids', async () => {
    type Operation = { parameters: { name: string; schema: { pattern?: string } }[] };
    const paths = (await documentOf({ mode: 'none' })).paths as Record<string, Record<string, Operation>>;
    const pattern = (path: string, method: string) =>
      paths[path]?.[method]?.parameters.find((p) => p.name === 'id')?.schema.pattern;
    expect(pattern('/v1/fit-jobs/{id}', 'get')).toBe('^[a-z0-9][a-z0-9._-]{0,62}$');
    expect(pattern('/v1/jobs/{id}', 'get')).toBe('^[a-z0-9][a-z0-9._-]{0,62}$');
  });

  it("states guide's phi length, the labels' range and rows, and the empty body of start and cancel", async () => {
    type Schema = { [k: string]: unknown; properties: Record<string, Record<string, unknown>> };
    const doc = (await documentOf({ mode: 'none' })) as {
      paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: unknown }> } }>>;
      components: { schemas: Record<string, Schema> };
    };
    const { GuideRequest, FitLabels } = doc.components.schemas as Record<string, Schema>;
    expect(GuideRequest?.properties.phi).toMatchObject({
      minItems: 1,
      description: expect.stringMatching(/d of the value function/),
    });
    expect(GuideRequest?.properties.lossGradients?.items).toMatchObject({ minItems: 1 });
    expect(FitLabels?.properties.labels?.items).toMatchObject({ minimum: 0, maximum: 999 });
    expect(FitLabels?.properties.rows).toMatchObject({ uniqueItems: true, minItems: 1 });
    for (const op of ['start', 'cancel']) {
      const body = doc.paths[`/v1/fit-jobs/{id}/${op}`]?.post?.requestBody.content['application/json']?.schema;
      expect(body).toEqual({ type: 'object', maxProperties: 0 });
    }
  });

  it('resolves every $ref to a component schema', async () => {
    const doc = await documentOf({ mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] });
    const schemas = (doc.components as { schemas: Record<string, unknown> }).schemas;
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(30);
    expect(refs.filter((id) => !((id as string) in schemas))).toEqual([]);
  });
});

describe('changes (the document diff)', () => {
  it('reports a removed path, a changed status, a changed type and an added keyword, but not an added constraint', () => {
    const old = { paths: { '/a': { get: { responses: { 200: {} } } }, '/b': {} }, s: { type: 'string' } };
    const now = {
      paths: { '/a': { get: { responses: { 201: {} } } } },
      s: { type: 'integer', pattern: '^x$', nullable: true },
    };
    expect(changes(old, now).sort()).toEqual(
      [
        '.paths./b: removed',
        '.paths./a.get.responses.200: removed',
        '.paths./a.get.responses.201: added',
        '.s.type: "string" -> "integer"',
        '.s.nullable: added',
      ].sort(),
    );
  });

  it('takes a tightened bound as an added constraint, and reports a loosened one', () => {
    const old = { a: { maximum: 10, minItems: 1 }, b: { maxLength: 5, minimum: 0 } };
    const now = { a: { maximum: 9, minItems: 2 }, b: { maxLength: 6, minimum: -1 } };
    expect(changes(old, now)).toEqual(['.b.maxLength: 5 -> 6', '.b.minimum: 0 -> -1']);
  });
});

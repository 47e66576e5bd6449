import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEvaluatorModule } from '../../shared/adapters/evaluator-module.in-process.js';
import { webhookEvaluatorOf } from '../../shared/adapters/evaluator.webhook.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import { evaluatorSpecSchema } from '../../shared/schemas/evaluation.js';
import { tempDir } from './fixtures.js';

async function moduleFile(name: string, source: string): Promise<string> {
  const path = join(await tempDir(), name);
  await writeFile(path, source);
  return path;
}

const webhook = evaluatorSpecSchema.parse({
  kind: 'webhook',
  name: 'partner-recall',
  url: 'https://metrics.example.com/recall',
  direction: 'maximize',
  secret: 'sixteen-chars-at-least',
});

/** The adapters the CLI's in-process runs use. */
const sources = {
  loadModule: loadEvaluatorModule,
  webhook: (spec: Parameters<typeof webhookEvaluatorOf>[0]) => webhookEvaluatorOf(spec),
};

describe('createEvaluatorRegistry', () => {
  it('lists the built-ins, a user module loaded by path and a webhook, and resolves each by name', async () => {
    const path = await moduleFile(
      'fraud-cost.mjs',
      "export default { name: 'fraud-cost', direction: 'minimize', version: '2024.1', evaluate: ({ scores }) => scores[0] };",
    );

    const registry = await createEvaluatorRegistry([{ kind: 'module', path }, webhook], sources);

    expect(registry.ok).toBe(true);
    if (!registry.ok) return;
    const listed = registry.value.list();
    expect(listed.filter((e) => e.kind === 'builtin').map((e) => e.name)).toContain('mcr');
    expect(listed.filter((e) => e.kind !== 'builtin')).toEqual([
      { name: 'fraud-cost', kind: 'module', direction: 'minimize', source: path, version: '2024.1' },
      { name: 'partner-recall', kind: 'webhook', direction: 'maximize', source: 'https://metrics.example.com/recall' },
    ]);
    const fraud = registry.value.resolve('fraud-cost');
    expect(
      fraud.ok && (await fraud.value.evaluate({ scores: Float32Array.of(0.25), labels: Int32Array.of(0), classes: 2 })),
    ).toBe(0.25);
    expect(registry.value.resolve('partner-recall')).toMatchObject({
      ok: true,
      value: { name: 'partner-recall', direction: 'maximize' },
    });
    expect(registry.value.resolve('f-measure')).toMatchObject({ ok: true, value: { name: 'f1' } });
  });

  it('resolves an unknown name to UNKNOWN_METRIC naming what is available', async () => {
    const registry = await createEvaluatorRegistry([webhook], sources);
    const r = registry.ok ? registry.value.resolve('nope') : undefined;
    expect(r).toMatchObject({ ok: false, error: { code: 'UNKNOWN_METRIC' } });
    expect(r && !r.ok && r.error.message).toMatch(/^unknown evaluator 'nope' \(available: mcr, .*partner-recall\)$/);
  });

  it('refuses a configured evaluator that would shadow a built-in', async () => {
    const path = await moduleFile(
      'mcr.mjs',
      "export default { name: 'mcr', direction: 'minimize', evaluate: () => 0 };",
    );
    const registry = await createEvaluatorRegistry([{ kind: 'module', path }], sources);
    expect(registry).toMatchObject({ ok: false, error: { code: 'EVALUATOR_MODULE_INVALID' } });
    expect(!registry.ok && registry.error.message).toBe(
      `evaluator registry: the name 'mcr' of module ${path} is taken by a built-in evaluator`,
    );
  });

  it('passes on a module that does not load as EVALUATOR_MODULE_INVALID', async () => {
    const path = await moduleFile('bad.mjs', 'export default { name: 42 };');
    const registry = await createEvaluatorRegistry([{ kind: 'module', path }], sources);
    expect(registry).toMatchObject({ ok: false, error: { code: 'EVALUATOR_MODULE_INVALID' } });
  });

  it('rejects a webhook spec with a short secret or a non-http URL at parse time', () => {
    const short = evaluatorSpecSchema.safeParse({ ...webhook, secret: 'short' });
    const ftp = evaluatorSpecSchema.safeParse({ ...webhook, url: 'ftp://x.example.com/' });
    expect(short.success || short.error.issues[0]?.message).toBe('webhook secret must have at least 16 characters');
    expect(ftp.success).toBe(false);
  });
});

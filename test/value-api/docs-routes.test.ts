import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { declareRoutes } from '../../functions/value-api/routes.js';

/**
 * Issue 23, item 8 (in part): the requests the docs show name routes the server has, and the
 * route tables of the docs list every route. Checked against the route table the app registers
 * (routes.ts), so a renamed or removed route fails here rather than in a user's terminal.
 */
const root = join(import.meta.dirname, '..', '..');
const docs = ['README.md', 'docs/value-api.md', 'docs/bring-your-own-model.md'];
const read = (file: string) => readFileSync(join(root, file), 'utf8');

const routes = Object.values(declareRoutes('none'))
  .filter((r) => r.path !== '/openapi.json')
  .map((r) => ({ method: r.method.toUpperCase(), path: r.path }));
const matches = (template: string, path: string) =>
  new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path);
const known = (method: string, path: string) => routes.some((r) => r.method === method && matches(r.path, path));

describe('the docs against the route table', () => {
  it('names only routes that exist (`METHOD /path` in code spans)', () => {
    const unknown: string[] = [];
    for (const file of docs) {
      for (const m of read(file).matchAll(/`(GET|POST|PUT|DELETE|PATCH) (\/[^`\s]*)`/g)) {
        const [, method, path] = m as unknown as [string, string, string];
        if (path.startsWith('/v1/') || path === '/healthz') {
          if (!known(method, path.replace(/\?.*$/, ''))) unknown.push(`${file}: ${method} ${path}`);
        }
      }
    }
    expect(unknown).toEqual([]);
  });

  it('sends its curl examples to existing routes, with the method and content type they need', () => {
    const problems: string[] = [];
    let seen = 0;
    for (const file of docs) {
      for (const m of read(file).matchAll(/`curl ([^`]+)`/g)) {
        const command = (m as unknown as [string, string])[1];
        const url = /"\$URL(\/[^"]*)"|https?:\/\/[^/\s"']+(\/[^\s"']*)/.exec(command);
        const path = (url?.[1] ?? url?.[2] ?? '').replace(/\?.*$/, '');
        const method = /-X ?(\w+)/.exec(command)?.[1] ?? (/ -d |--data/.test(command) ? 'POST' : 'GET');
        seen++;
        if (!known(method, path)) problems.push(`${file}: ${method} ${path}`);
        if (method === 'POST' && !/Content-Type: application\/(json|x-ndjson|octet-stream)/i.test(command)) {
          problems.push(`${file}: ${method} ${path} without a Content-Type the route takes (curl -d sends a form)`);
        }
      }
    }
    expect(seen).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  it('lists every route in the route tables of docs/value-api.md and docs/bring-your-own-model.md', () => {
    const tables = `${read('docs/value-api.md')}\n${read('docs/bring-your-own-model.md')}`;
    const listed = new Set([...tables.matchAll(/^\| `(GET|POST) (\/[^`]+)`/gm)].map((m) => `${m[1]} ${m[2]}`));
    expect(routes.map((r) => `${r.method} ${r.path}`).filter((r) => !listed.has(r))).toEqual([]);
  });
});

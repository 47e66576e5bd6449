import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The domain core (shared/ outside shared/adapters/) runs anywhere the Lambda, the container, the
 * CLI and a browser-like worker do: it reaches Node only through ports. dependency-cruiser checks
 * its imports (.dependency-cruiser.cjs); this checks the Node globals it could use without one.
 */
const root = join(import.meta.dirname, '../..');
const NODE_GLOBALS = /\b(Buffer|process|__dirname|__filename|require)\b\s*[.(]/;

function coreFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path.endsWith(join('shared', 'adapters')) ? [] : coreFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** The code of a file without its comments and string contents (a mention is not a use). */
const codeOf = (text: string) =>
  text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/g, "''");

describe('the domain core', () => {
  it('uses no Node globals (Buffer, process, require) outside shared/adapters/', () => {
    const uses = coreFiles(join(root, 'shared')).flatMap((file) =>
      codeOf(readFileSync(file, 'utf8'))
        .split('\n')
        .filter((line) => NODE_GLOBALS.test(line))
        .map((line) => `${relative(root, file)}: ${line.trim()}`),
    );
    expect(uses).toEqual([]);
  });

  it('finds a use when there is one (the check can fail)', () => {
    expect(NODE_GLOBALS.test(codeOf("const b = Buffer.from('x'); // process.env"))).toBe(true);
    expect(NODE_GLOBALS.test(codeOf("// Buffer.from('x')\nconst s = 'process.env';"))).toBe(false);
  });
});

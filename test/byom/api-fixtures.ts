import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { expect } from 'vitest';

/** A value-API JSON answer: an error with a code (and line issues for uploads), or anything else. */
export type Json = {
  error?: { code: string; message: string; details?: { issues?: { line: number; reason: string }[] } };
} & Record<string, unknown>;

/** Expects `res` to be an error answer with this status and code; returns its body. */
export async function expectError(res: Response, status: number, code: string): Promise<Json> {
  const body = (await res.json()) as Json;
  expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
  return body;
}

/** Every file under `dir` (none when it does not exist), relative to it, sorted. */
export async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * docs/ must name exactly the error codes and ini keys the code has.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import * as errors from '../../src/errors.js';
import { legacySessionsSchema, poolSchema, serverSchema, sessionSchema } from '../../src/config/schema.js';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** Codes the catalog defines: every `'ERR_…'` literal in src/errors.ts. */
function catalogCodes(): Set<string> {
  return new Set(read('src/errors.ts').match(/'ERR_[A-Z_]+'/g)!.map((code) => code.slice(1, -1)));
}

test('docs/errors.md documents every error code of src/errors.ts, and no other', () => {
  const documented = new Set([...read('docs/errors.md').matchAll(/^\| `(ERR_[A-Z_]+)`/gm)].map((match) => match[1]!));
  assert.deepEqual([...documented].sort(), [...catalogCodes()].sort());
});

test('every exported error class is in the catalog and documented by class name', () => {
  const table = read('docs/errors.md');
  for (const [name, value] of Object.entries(errors)) {
    if (typeof value !== 'function' || !(value.prototype instanceof errors.KeepsakeError)) continue;
    assert.ok(table.includes(`\`${name}\``), `${name} is not in docs/errors.md`);
  }
});

function documentedKeys(section: string): string[] {
  const text = read('docs/config.md');
  const start = text.indexOf(`## [${section}]`);
  assert.ok(start >= 0, `docs/config.md has no ## [${section}] section`);
  const end = text.indexOf('\n## ', start + 1);
  const body = text.slice(start, end < 0 ? undefined : end);
  return [...body.matchAll(/^\| `([a-z_]+)` \|/gm)].map((match) => match[1]!).sort();
}

function schemaKeys(schema: z.ZodObject): string[] {
  return Object.keys(schema.shape).sort();
}

test('docs/config.md documents every ini key of the schema, and no other', () => {
  assert.deepEqual(documentedKeys('server'), schemaKeys(serverSchema));
  assert.deepEqual(documentedKeys('session'), schemaKeys(sessionSchema as unknown as z.ZodObject));
  assert.deepEqual(documentedKeys('redis_connection_pool.NAME'), schemaKeys(poolSchema as unknown as z.ZodObject));
  assert.deepEqual(documentedKeys('legacy_sessions'), schemaKeys(legacySessionsSchema as unknown as z.ZodObject));
});

test('config/app.ini shows every key DEMO-APP.md lists, each documented', () => {
  const ini = read('config/app.ini');
  const keys = [...ini.matchAll(/^([a-z_]+)\s*=/gm)].map((match) => match[1]!);
  const all = new Set([...documentedKeys('server'), ...documentedKeys('session'), ...documentedKeys('redis_connection_pool.NAME')]);
  for (const key of keys) assert.ok(all.has(key), `${key} of config/app.ini is not documented`);
});

/**
 * docs/errors.md gives each code the status its class in src/errors.ts really carries (a review
 * found rows with statuses the code never used).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

test('every status in docs/errors.md is the one src/errors.ts gives that code', () => {
  const code = new Map([...read('src/errors.ts').matchAll(/super\(\s*'(ERR_[A-Z_]+)',\s*(\w+)/g)].map((match) => [match[1]!, match[2]!]));
  const rows = [...read('docs/errors.md').matchAll(/^\| `(ERR_[A-Z_]+)` \| ([^|]+) \|/gm)].map((match) => [match[1]!, match[2]!.trim()] as const);
  assert.ok(rows.length >= 15);
  for (const [name, documented] of rows) {
    const status = code.get(name);
    assert.ok(status !== undefined, `${name} is not raised with a status in src/errors.ts`);
    // A class that takes its status as a parameter (BadRequestError) is documented as a range.
    if (/^\d+$/.test(status)) assert.equal(documented, status, `${name}: docs/errors.md says ${documented}, src/errors.ts uses ${status}`);
    else assert.match(documented, /^\dxx$/, `${name} takes its status as a parameter: document the range`);
  }
});

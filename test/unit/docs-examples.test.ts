/**
 * The TypeScript shown in the README and docs/ is real: every ```ts block is a piece of a file in
 * docs/examples/, which test/e2e/package.test.ts type-checks against the packed package (and
 * partly runs). And the docs link only to files that exist.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Pages whose ```ts blocks must come from docs/examples. */
const PAGES = ['README.md', 'docs/getting-started.md', 'docs/controllers.md', 'docs/websocket.md'];

function examples(): Map<string, string> {
  const dir = join(root, 'docs', 'examples');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
  return new Map(files.map((file) => [`docs/examples/${file}`, readFileSync(join(dir, file), 'utf8')]));
}

/** Lines without their indentation, so a method shown on its own matches the class it is in. */
function normalize(text: string): string[] {
  return text.split('\n').map((line) => line.trim());
}

function contains(haystack: string[], needle: string[]): boolean {
  outer: for (let start = 0; start + needle.length <= haystack.length; start++) {
    for (let i = 0; i < needle.length; i++) if (haystack[start + i] !== needle[i]) continue outer;
    return true;
  }
  return false;
}

function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1]!.replace(/\n$/, ''));
}

test('every TypeScript block of the README and the guides is a piece of a type-checked file in docs/examples', () => {
  const files = [...examples()].map(([path, text]) => [path, normalize(text)] as const);
  let count = 0;
  for (const page of PAGES) {
    for (const block of tsBlocks(read(page))) {
      count++;
      const found = files.some(([, lines]) => contains(lines, normalize(block)));
      assert.ok(found, `${page}: this block is in no file of docs/examples (change the example and the page together):\n${block}`);
    }
  }
  assert.ok(count >= 15, `expected the guides to show their code (found ${count} blocks)`);
});

test('the examples import keepsake by its package name, as users do', () => {
  for (const [path, text] of examples()) {
    for (const [, specifier] of text.matchAll(/from '([^']+)'/g)) {
      assert.ok(!specifier!.includes('/src/') && !specifier!.startsWith('../'), `${path} imports '${specifier}'; use 'keepsake' or a file next to it`);
    }
  }
});

test('relative links of the README and docs/ point at files that exist', () => {
  const pages = ['README.md', 'bench/README.md', ...readdirSync(join(root, 'docs')).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)];
  const broken: string[] = [];
  for (const page of pages) {
    // Links outside code: drop fenced blocks and inline code first.
    const prose = read(page).replace(/^```[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!) || target!.startsWith('#')) continue;
      const path = decodeURIComponent(target!.split('#')[0]!);
      const resolved = join(root, dirname(page), path);
      if (!existsSync(resolved)) broken.push(`${page} → ${target} (${relative(root, resolved)})`);
    }
  }
  assert.deepEqual(broken, [], `broken links:\n${broken.join('\n')}`);
});

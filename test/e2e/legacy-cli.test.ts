/**
 * `keepsake legacy stats|adopt-all` as an operator runs them (`node bin/keepsake.js …` in a child
 * process) on 10,000 sessions of a real express-session + connect-redis app, while a keepsake node
 * keeps serving requests.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startApp, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { startExpressSessionApp } from '../support/legacy-apps.js';
import { dropPrefix, inspector, sessionCookie } from '../support/session-helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'keepsake.js');
const SECRET = 'express-secret-of-the-old-app';
const SESSIONS = 10_000;

const redis = inspector();
const prefix = testPrefix('legacy-cli');
const legacyPrefix = testPrefix('legacy-cli-old');
const dir = mkdtempSync(path.join(os.tmpdir(), 'keepsake-legacy-'));
const configFile = path.join(dir, 'app.ini');
const closers: (() => Promise<void>)[] = [];

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await dropPrefix(redis, prefix);
  await dropPrefix(redis, legacyPrefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function keepsake(...args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.SESSION_SECRETS;
  delete env.NODE_DEBUG;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

test('adopt-all adopts 10,000 legacy sessions in bounded batches while requests keep being served; stats counts them', { timeout: 240_000 }, async (t) => {
  const legacySection = { cookie_name: 'connect.sid', secrets: SECRET, key_prefix: legacyPrefix, user_field: 'user' };
  const ini = readFileSync(path.join(ROOT, 'config/app.ini'), 'utf8').replace(/^key_prefix = .*$/m, `key_prefix = ${prefix}`);
  writeFileSync(configFile, `${ini}\n[legacy_sessions]\n${Object.entries(legacySection).map(([key, value]) => `${key} = ${value}`).join('\n')}\n`);

  // One visitor through the real app (their cookie is kept); the rest copies of the JSON it wrote.
  const legacy = await startExpressSessionApp({ prefix: legacyPrefix, secrets: [SECRET], cookieName: 'connect.sid' });
  closers.push(() => legacy.close());
  const visitor = new Client(legacy.url);
  assert.equal((await visitor.request('POST', '/seed', { user: 'carol', name: 'Cee', basket: [{ sku: 'jam', qty: 1 }] })).status, 200);
  const legacyCookie = `connect.sid=${visitor.cookies.get('connect.sid')!}`;
  const [written] = await redis.keys(`${legacyPrefix}*`);
  const json = JSON.parse((await redis.get(written!))!) as Record<string, unknown>;
  for (let from = 1; from < SESSIONS; from += 1000) {
    const pipeline = redis.pipeline();
    for (let i = from; i < Math.min(from + 1000, SESSIONS); i++) pipeline.set(`${legacyPrefix}copy${String(i).padStart(28, '0')}`, JSON.stringify({ ...json, user: `user${i}` }), 'EX', 3600);
    await pipeline.exec();
  }

  const before = await keepsake('legacy', 'stats', '--config', configFile);
  assert.equal(before.code, 0, before.stderr);
  assert.deepEqual(JSON.parse(before.stdout), { left: SESSIONS, adopted: 0, skippedValues: 0 });

  // A node serving traffic the whole time: a shopper adding to a basket, one request after another.
  const node = await startApp({ session: { key_prefix: prefix }, legacy_sessions: legacySection });
  closers.push(() => node.close());
  const shopper = new Client(node.url);
  let running = true;
  let answered = 0;
  let slowestMs = 0;
  const traffic = (async () => {
    while (running) {
      const began = Date.now();
      const reply = await shopper.request('POST', '/api/basket/items', { sku: `tea-${Math.floor(answered / 900)}`, qty: 1 }); // a sku holds at most 999
      assert.equal(reply.status, 201, JSON.stringify(reply.body));
      slowestMs = Math.max(slowestMs, Date.now() - began);
      answered++;
    }
  })();
  const run = await keepsake('legacy', 'adopt-all', '--config', configFile);
  const answeredDuring = answered;
  running = false;
  await traffic;

  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { adopted: number; busy: number; failed: number; batches: number; largestBatch: number; ms: number };
  assert.equal(report.adopted, SESSIONS);
  assert.equal(report.failed, 0);
  assert.ok(report.largestBatch <= 100, `batches of at most 100 keys (largest ${report.largestBatch})`);
  assert.ok(report.batches >= SESSIONS / 100, `${report.batches} batches`);
  assert.match(run.stderr, /^batch 1: \d+ key\(s\)/m);
  assert.ok(answeredDuring > 0, 'requests were answered while adopt-all ran');
  t.diagnostic(`adopt-all: ${SESSIONS} sessions in ${report.ms} ms, ${report.batches} batches; ${answeredDuring} requests answered meanwhile (slowest ${slowestMs} ms)`);
  const items = (await shopper.request('GET', '/api/basket')).body.items;
  const expected = Array.from({ length: Math.ceil(answered / 900) }, (_, index) => ({ sku: `tea-${index}`, qty: Math.min(900, answered - index * 900) }));
  assert.deepEqual(items, expected, `every one of the shopper's ${answered} adds survived`);

  const stats = await keepsake('legacy', 'stats', '--config', configFile);
  assert.equal(stats.code, 0, stats.stderr);
  assert.deepEqual(JSON.parse(stats.stdout), { left: 0, adopted: SESSIONS, skippedValues: 0 });

  // The real visitor comes back with the old cookie: the adopted session, logged in, the old cookie cleared.
  const back = await fetch(`${node.url}/api/session`, { headers: { cookie: legacyCookie } });
  assert.equal(back.status, 200);
  assert.deepEqual(await back.json(), { user: 'carol', authenticated: true, name: 'Cee', basket: [{ sku: 'jam', qty: 1 }] });
  assert.equal(sessionCookie(back.headers.getSetCookie(), 'connect.sid')?.attributes.get('max-age'), '0');
  const again = await keepsake('legacy', 'adopt-all', '--config', configFile);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).adopted, 0, 'resumable: a second run finds nothing left');
});

test('legacy: an unknown action or a bad --batch is a usage error (2); a config without [legacy_sessions] says so (1)', async () => {
  const unknown = await keepsake('legacy', 'frobnicate', '--config', configFile);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown action 'frobnicate'/);
  const badBatch = await keepsake('legacy', 'adopt-all', '--batch', '0', '--config', configFile);
  assert.equal(badBatch.code, 2);
  assert.match(badBatch.stderr, /--batch/);
  const plain = path.join(dir, 'plain.ini');
  writeFileSync(plain, readFileSync(path.join(ROOT, 'config/app.ini'), 'utf8'));
  const none = await keepsake('legacy', 'stats', '--config', plain);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no \[legacy_sessions\] section/);
});

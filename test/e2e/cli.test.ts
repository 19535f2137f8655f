/**
 * `keepsake session show|list|destroy` as a user runs them: `node bin/keepsake.js …` in a child
 * process, against the shared Redis under this test's key prefix, next to a running app.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { newSessionId } from '../../src/session/session-id.js';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector, TestSocket } from '../support/session-helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'keepsake.js');

const redis = inspector();
const prefix = testPrefix('cli-session');
const dir = mkdtempSync(path.join(os.tmpdir(), 'keepsake-cli-'));
const configFile = path.join(dir, 'app.ini');
let server: TestApp;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** When the process had exited. */
  exitedAt: number;
}

function keepsake(...args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.SESSION_SECRETS; // the ini's default (the dev secret), as the app under test uses
  delete env.NODE_DEBUG;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr, exitedAt: Date.now() });
    });
  });
}

before(async () => {
  const ini = readFileSync(path.join(ROOT, 'config', 'app.ini'), 'utf8').replace(/^key_prefix\s*=.*$/m, `key_prefix = ${prefix}`);
  assert.ok(ini.includes(`key_prefix = ${prefix}`));
  writeFileSync(configFile, ini);
  server = await startApp({ session: { key_prefix: prefix } as never });
});

after(async () => {
  await server?.close();
  await dropPrefix(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

test('session show prints exactly one JSON object of the decoded data on stdout', async () => {
  const client = new Client(server.url);
  await client.put('/api/name', { name: 'Ada' });
  await client.post('/api/basket/items', { sku: 'tea', qty: 2 });
  const run = await keepsake('session', 'show', client.sessionId()!, '--config', configFile);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim().split('\n').length, 1);
  assert.deepEqual(JSON.parse(run.stdout), { name: 'Ada', basket: [{ sku: 'tea', qty: 2 }] });
  assert.equal((await client.get('/api/session')).body.name, 'Ada', 'show changes nothing');
});

test('session show of an unknown or malformed id exits non-zero with a message on stderr', async () => {
  const [unknown, malformed, usage] = await Promise.all([
    keepsake('session', 'show', newSessionId(), '--config', configFile),
    keepsake('session', 'show', 'not-an-id', '--config', configFile),
    keepsake('session', 'show', '--config', configFile),
  ]);
  assert.notEqual(unknown.code, 0);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /no session/);
  assert.notEqual(malformed.code, 0);
  assert.match(malformed.stderr, /not a session id/);
  assert.notEqual(usage.code, 0);
  assert.match(usage.stderr, /usage/);
});

test('an id that begins with "-" (one in 64 do) is taken as the id, not as an option', async () => {
  const id = `-${newSessionId().slice(1)}`;
  const unknown = await keepsake('session', 'show', id, '--config', configFile);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /no session/);

  await redis.hset(prefix + id, 'm:c', String(Date.now()), 'm:a', 'tagtagtagtag');
  await redis.pexpire(prefix + id, 60_000);
  const shown = await keepsake('session', 'show', id, '--config', configFile);
  assert.equal(shown.code, 0, shown.stderr);
  assert.deepEqual(JSON.parse(shown.stdout), {});
  const destroyed = await keepsake('session', 'destroy', id, '--config', configFile);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.equal(await redis.exists(prefix + id), 0);
});

test('session list --user prints the ids of the user, one per line', async () => {
  const laptop = new Client(server.url);
  const phone = new Client(server.url);
  await laptop.post('/api/login', { username: 'lister' });
  await phone.post('/api/login', { username: 'lister' });
  const run = await keepsake('session', 'list', '--user', 'lister', '--config', configFile);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.trim().split('\n').sort(), [laptop.sessionId()!, phone.sessionId()!].sort());

  await phone.post('/api/logout');
  const afterLogout = await keepsake('session', 'list', '--user', 'lister', '--config', configFile);
  assert.equal(afterLogout.stdout, `${laptop.sessionId()!}\n`);

  const nobody = await keepsake('session', 'list', '--user', 'nobody', '--config', configFile);
  assert.equal(nobody.code, 0);
  assert.equal(nobody.stdout, '');
});

test('session list --user NAME --json prints one JSON array of the devices, each with its id', async () => {
  const laptop = new Client(server.url);
  await laptop.post('/api/login', { username: 'jsonlister' }, { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0' });
  const run = await keepsake('session', 'list', '--user', 'jsonlister', '--json', '--config', configFile);
  assert.equal(run.code, 0, run.stderr);
  const devices = JSON.parse(run.stdout);
  assert.equal(devices.length, 1);
  assert.deepEqual(Object.keys(devices[0]), ['id', 'handle', 'createdAt', 'lastSeenAt', 'userAgent', 'browser', 'os', 'ip', 'online', 'sockets']);
  assert.equal(devices[0].id, laptop.sessionId());
  assert.equal(devices[0].browser, 'Firefox');
  assert.equal(devices[0].os, 'Linux');
  assert.equal(devices[0].online, false);
  const nobody = await keepsake('session', 'list', '--user', 'nobody-json', '--json', '--config', configFile);
  assert.equal(nobody.stdout, '[]\n');
});

test('session destroy ID ends the session: its cookie stops working and its socket closes with 4401 within 1 s', async (t) => {
  const client = new Client(server.url);
  await client.put('/api/name', { name: 'Gone soon' });
  await client.post('/api/login', { username: 'target' });
  const id = client.sessionId()!;
  const socket = await TestSocket.open(server.url, client.cookieHeader);
  t.after(() => socket.close());

  const run = await keepsake('session', 'destroy', id, '--config', configFile);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(await redis.exists(prefix + id), 0);
  assert.equal(await redis.zscore(`${prefix}user:target`, id), null);
  assert.equal(await socket.closedWithin(1000), 4401);
  assert.ok(socket.closed!.at - run.exitedAt < 1000, 'closed within a second of the command');
  const reply = await client.get('/api/session');
  assert.deepEqual([reply.body.authenticated, reply.body.name], [false, null]);
  assert.notEqual(client.sessionId(), id);

  const again = await keepsake('session', 'destroy', id, '--config', configFile);
  assert.notEqual(again.code, 0, 'an unknown id is an error');
  assert.match(again.stderr, /no session/);
});

test('session destroy --user ends every session of the user and closes their sockets', async (t) => {
  const clients = [new Client(server.url), new Client(server.url)];
  for (const client of clients) await client.post('/api/login', { username: 'everywhere' });
  const bystander = new Client(server.url);
  await bystander.post('/api/login', { username: 'someone-else' });
  const sockets = await Promise.all(clients.map((client) => TestSocket.open(server.url, client.cookieHeader)));
  t.after(() => sockets.forEach((socket) => socket.close()));

  const run = await keepsake('session', 'destroy', '--user', 'everywhere', '--config', configFile);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /destroyed 2 session/);
  for (const client of clients) assert.equal(await redis.exists(prefix + client.sessionId()!), 0);
  assert.deepEqual(await Promise.all(sockets.map((socket) => socket.closedWithin(1000))), [4401, 4401]);
  assert.equal((await bystander.get('/api/session')).body.user, 'someone-else');
  const list = await keepsake('session', 'list', '--user', 'everywhere', '--config', configFile);
  assert.equal(list.stdout, '');
});

test('session with a bad action or missing arguments exits 2 with the usage', async () => {
  const [bad, list] = await Promise.all([keepsake('session', 'explode', '--config', configFile), keepsake('session', 'list', '--config', configFile)]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /usage/);
  assert.equal(list.code, 2);
});

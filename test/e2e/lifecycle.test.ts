/**
 * Session lifecycle over real HTTP and real Redis: login (regenerate), logout (destroy), log out
 * everywhere across two app nodes, secret rotation, unknown ids, size limits, corrupt bytes.
 */
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { sign } from 'cookie-signature';
import { buildApp } from '../../app/build-app.js';
import { createKeepsake } from '../../src/index.js';
import { newSessionId } from '../../src/session/session-id.js';
import { startApp, testConfig, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector, sessionCookie, TestSocket } from '../support/session-helpers.js';

const SECRET_A = 'secret-A-0123456789abcdefghijklmnopqrstuvwxyz';
const SECRET_B = 'secret-B-0123456789abcdefghijklmnopqrstuvwxyz';
const DEV_SECRET = 'dev-only-secret-change-me-0123456789abcdef';

const redis = inspector();
const prefixes: string[] = [];

/** A demo app on its own prefix (or a shared one), cleaned up after the file. */
async function app(t: { after: (fn: () => Promise<void>) => void }, session: Record<string, unknown> = {}): Promise<TestApp> {
  const started = await startApp({ session: { key_prefix: testPrefix('lifecycle'), ...session } as never });
  prefixes.push(started.prefix);
  t.after(() => started.close());
  return started;
}

before(async () => {
  await redis.ping();
});

after(async () => {
  for (const prefix of prefixes) await dropPrefix(redis, prefix);
  redis.disconnect();
});

test('login gives a new id and cookie, carries the data over, and the old cookie only gets a fresh anonymous session', async (t) => {
  const { url, prefix } = await app(t);
  const client = new Client(url);
  assert.equal((await client.put('/api/name', { name: 'Ada' })).status, 200);
  assert.equal((await client.post('/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  const before = await client.get('/api/session');
  assert.match(before.body.user, /^anon-/);
  const oldId = client.sessionId()!;
  const oldCookie = client.cookieHeader!;

  const login = await client.post('/api/login', { username: 'alice' });
  assert.equal(login.status, 200);
  assert.deepEqual(login.body, { user: 'alice', authenticated: true, name: 'Ada', basket: [{ sku: 'tea', qty: 2 }] });
  const cookie = sessionCookie(login.setCookies);
  assert.ok(cookie, 'login sets a new cookie');
  assert.notEqual(cookie.id, oldId);
  assert.ok(cookie.attributes.has('httponly'));
  assert.equal(cookie.attributes.get('samesite')?.toLowerCase(), 'lax');
  assert.equal(cookie.attributes.get('max-age'), '86400');

  assert.equal(await redis.exists(prefix + oldId), 0, 'the old key is gone');
  assert.equal(await redis.exists(prefix + cookie.id), 1);
  assert.equal(await redis.hget(prefix + cookie.id, 'm:u'), 'alice');
  assert.ok((await redis.pttl(prefix + cookie.id)) > 0);
  assert.deepEqual(await redis.zrange(`${prefix}user:alice`, 0, '-1'), [cookie.id], 'the user index lists the new id');
  assert.ok((await redis.pttl(`${prefix}user:alice`)) > 0, 'the user index has a TTL');

  const after = await client.get('/api/session');
  assert.deepEqual(after.body, login.body, 'the new cookie names the logged-in session');

  const thief = new Client(url);
  const replay = await thief.get('/api/session', { cookie: oldCookie });
  assert.equal(replay.status, 200);
  assert.match(replay.body.user, /^anon-/);
  assert.equal(replay.body.name, null);
  assert.deepEqual(replay.body.basket, []);
  const fresh = sessionCookie(replay.setCookies);
  assert.ok(fresh);
  assert.notEqual(fresh.id, oldId, 'the old id is never adopted again');
  assert.notEqual(fresh.id, cookie.id);
  assert.equal(await redis.exists(prefix + oldId), 0);
});

test('logout deletes the session and its index entry, clears the cookie, and a replayed cookie is a new session', async (t) => {
  const { url, prefix } = await app(t);
  const client = new Client(url);
  await client.put('/api/name', { name: 'Bob' });
  await client.post('/api/login', { username: 'bob' });
  const id = client.sessionId()!;
  const stolen = client.cookieHeader!;
  assert.equal(await redis.exists(prefix + id), 1);

  const logout = await client.post('/api/logout');
  assert.equal(logout.status, 200);
  assert.deepEqual(logout.body, { ok: true });
  const cleared = sessionCookie(logout.setCookies);
  assert.ok(cleared, 'logout sends Set-Cookie');
  assert.equal(cleared.value, '');
  assert.equal(cleared.attributes.get('max-age'), '0');
  assert.equal(await redis.exists(prefix + id), 0, 'the Redis data is gone');
  assert.equal(await redis.zscore(`${prefix}user:bob`, id), null, 'the user index forgot it');
  assert.equal(await redis.exists(`${prefix}user:bob`), 0);

  const replay = await new Client(url).get('/api/session', { cookie: stolen });
  assert.equal(replay.status, 200);
  assert.deepEqual([replay.body.authenticated, replay.body.name], [false, null]);
  assert.notEqual(sessionCookie(replay.setCookies)?.id, id);
});

test('logout closes the sockets of the session with 4401', async (t) => {
  const { url } = await app(t);
  const client = new Client(url);
  await client.post('/api/login', { username: 'carol' });
  const socket = await TestSocket.open(url, client.cookieHeader);
  t.after(() => socket.close());
  assert.equal(socket.messages[0].user, 'carol');
  await client.post('/api/logout');
  assert.equal(await socket.closedWithin(1500), 4401);
});

test('log out everywhere ends every session of the user on two app nodes and closes their sockets; other users stay', async (t) => {
  const prefix = testPrefix('everywhere');
  const nodeA = await app(t, { key_prefix: prefix });
  const nodeB = await app(t, { key_prefix: prefix });
  const laptop = new Client(nodeA.url);
  const phone = new Client(nodeB.url);
  const other = new Client(nodeB.url);
  await laptop.put('/api/name', { name: 'Dan (laptop)' });
  await laptop.post('/api/login', { username: 'dan' });
  await phone.post('/api/login', { username: 'dan' });
  await other.post('/api/login', { username: 'erin' });
  const ids = [laptop.sessionId()!, phone.sessionId()!];
  const sockets = [await TestSocket.open(nodeA.url, laptop.cookieHeader), await TestSocket.open(nodeB.url, phone.cookieHeader)];
  const bystander = await TestSocket.open(nodeB.url, other.cookieHeader);
  t.after(() => [...sockets, bystander].forEach((socket) => socket.close()));

  // A third process (an admin task) with the same config: no app node has to do it.
  const admin = await createKeepsake(nodeA.config);
  t.after(() => admin.close());
  assert.deepEqual((await admin.sessionManager.userSessions('dan')).sort(), [...ids].sort());

  assert.equal(await admin.sessionManager.destroyUser('dan'), 2);
  for (const id of ids) assert.equal(await redis.exists(prefix + id), 0);
  assert.equal(await redis.exists(`${prefix}user:dan`), 0);
  assert.deepEqual(await admin.sessionManager.userSessions('dan'), []);
  assert.deepEqual(await Promise.all(sockets.map((socket) => socket.closedWithin(1500))), [4401, 4401]);

  for (const client of [laptop, phone]) {
    const reply = await client.get('/api/session');
    assert.equal(reply.body.authenticated, false);
    assert.equal(reply.body.name, null);
  }
  const survivor = await other.get('/api/session');
  assert.equal(survivor.body.user, 'erin');
  assert.equal(bystander.closed, null, "another user's socket stays open");
});

test('an id the store does not know is never adopted, even when signed with the right secret', async (t) => {
  const { url, prefix } = await app(t);
  const planted = newSessionId();
  const cookie = `dmsession=${encodeURIComponent(sign(planted, DEV_SECRET))}`;
  for (const path of ['/api/session', '/api/name']) {
    const client = new Client(url);
    const reply = path === '/api/session' ? await client.get(path, { cookie }) : await client.put(path, { name: 'Mallory' }, { cookie });
    assert.equal(reply.status, 200);
    const issued = sessionCookie(reply.setCookies);
    assert.ok(issued, 'a new cookie is issued');
    assert.notEqual(issued.id, planted);
    assert.equal(await redis.exists(prefix + planted), 0, 'nothing is stored under the planted id');
    assert.equal(await redis.exists(prefix + issued.id), 1, 'the new id names a stored session');
  }
  // Login on top of a planted cookie does not adopt it either.
  const login = await new Client(url).post('/api/login', { username: 'mallory' }, { cookie });
  assert.notEqual(sessionCookie(login.setCookies)?.id, planted);
  assert.equal(await redis.exists(prefix + planted), 0);
});

test('secret rotation: A signs → with B,A the A cookie works and is re-signed with B, same id → with B alone an A cookie is a new session', async (t) => {
  const prefix = testPrefix('rotation');
  const onlyA = await app(t, { key_prefix: prefix, secrets: [SECRET_A] });
  const both = await app(t, { key_prefix: prefix, secrets: [SECRET_B, SECRET_A] });
  const onlyB = await app(t, { key_prefix: prefix, secrets: [SECRET_B] });

  const first = await new Client(onlyA.url).put('/api/name', { name: 'Rosa' });
  const signedA = sessionCookie(first.setCookies)!;
  assert.equal(decodeURIComponent(signedA.value), sign(signedA.id, SECRET_A));
  const cookieA = `dmsession=${signedA.value}`;

  const rotated = await new Client(both.url).get('/api/session', { cookie: cookieA });
  assert.equal(rotated.status, 200);
  assert.equal(rotated.body.name, 'Rosa', 'the A cookie is still accepted');
  const signedB = sessionCookie(rotated.setCookies);
  assert.ok(signedB, 'the reply re-signs the cookie');
  assert.equal(signedB.id, signedA.id, 'same id');
  assert.equal(decodeURIComponent(signedB.value), sign(signedA.id, SECRET_B), 'signed with the newest secret');
  const again = await new Client(both.url).get('/api/session', { cookie: `dmsession=${signedB.value}` });
  assert.equal(sessionCookie(again.setCookies), undefined, 'a cookie signed with the newest secret is not re-sent');

  const retired = await new Client(onlyB.url).get('/api/session', { cookie: cookieA });
  assert.equal(retired.status, 200);
  assert.equal(retired.body.name, null, 'once A is retired, an A cookie is a fresh session');
  assert.notEqual(sessionCookie(retired.setCookies)?.id, signedA.id);
  const kept = await new Client(onlyB.url).get('/api/session', { cookie: `dmsession=${signedB.value}` });
  assert.equal(kept.body.name, 'Rosa', 'the re-signed cookie keeps working');
});

test('max_session_bytes: a write past it answers 413 ERR_SESSION_TOO_LARGE and nothing is written', async (t) => {
  const { url, prefix } = await app(t, { max_session_bytes: 48 });
  const client = new Client(url);
  assert.equal((await client.put('/api/name', { name: 'short' })).status, 200);
  const id = client.sessionId()!;
  const stored = await redis.hgetBuffer(prefix + id, 'd:name');

  const tooLarge = await client.put('/api/name', { name: 'x'.repeat(60) });
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.body.error.code, 'ERR_SESSION_TOO_LARGE');
  assert.deepEqual(await redis.hgetBuffer(prefix + id, 'd:name'), stored, 'the stored value is unchanged');
  assert.equal((await client.get('/api/session')).body.name, 'short');

  const basket = await client.post('/api/basket/items', { sku: 'y'.repeat(32), qty: 1 });
  assert.equal(basket.status, 413);
  assert.equal(basket.body.error.code, 'ERR_SESSION_TOO_LARGE');
  assert.equal(await redis.hexists(prefix + id, 'd:basket'), 0);

  // A new session whose first write is too large is not created at all.
  const newcomer = new Client(url);
  const refused = await newcomer.put('/api/name', { name: 'z'.repeat(60) });
  assert.equal(refused.status, 413);
  assert.equal(sessionCookie(refused.setCookies), undefined, 'no cookie names a session that was not stored');
});

test('undecodable bytes in one field: that key reads as absent and is logged; the rest of the session survives', async (t) => {
  const config = testConfig({ session: { key_prefix: testPrefix('corrupt') } as never });
  prefixes.push(config.session.key_prefix);
  const logs: any[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line));
      done();
    },
  });
  const server = await buildApp(config, { logger: { level: 'warn', stream } as never });
  await server.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  const prefix = config.session.key_prefix;

  const client = new Client(url);
  await client.put('/api/name', { name: 'Ada' });
  await client.post('/api/basket/items', { sku: 'tea', qty: 1 });
  const key = prefix + client.sessionId()!;
  await redis.hset(key, 'd:name', Buffer.from([0xd9, 0x10, 0x41])); // a str8 of 16 bytes holding one

  const view = await client.get('/api/session');
  assert.equal(view.status, 200);
  assert.equal(view.body.name, null, 'the corrupt key reads as absent');
  assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 1 }], 'the rest survives');
  const warning = logs.find((entry) => /undecodable/.test(entry.msg));
  assert.ok(warning, `a warning is logged (got ${JSON.stringify(logs)})`);
  assert.equal(warning.key, 'name');
  assert.equal(warning.level, 40);
  assert.ok(!JSON.stringify(warning).includes(client.sessionId()!), 'the log does not show the session id');

  // update() over corrupt bytes starts from an absent value instead of failing.
  await redis.hset(key, 'd:basket', Buffer.from([0xd9, 0x10, 0x41]));
  const added = await client.post('/api/basket/items', { sku: 'jam', qty: 2 });
  assert.equal(added.status, 201);
  assert.deepEqual(added.body.items, [{ sku: 'jam', qty: 2 }]);
  assert.equal((await client.put('/api/name', { name: 'Ada again' })).status, 200, 'the key can be written again');
  assert.equal((await client.get('/api/session')).body.name, 'Ada again');
});

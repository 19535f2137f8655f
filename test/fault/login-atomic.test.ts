// Login happens whole (data, user index, new cookie) or not at all: a fault at any step leaves the
// visitor's cookie naming their intact session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { eventually, inspector } from '../support/session-helpers.js';
import { FUNCTION } from '../../src/redis/redis-functions.js';

test('the user-index add fails mid-login: no cookie is set, and the old cookie still names the whole session', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const inspect = inspector();
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  const before = alice.sessionId()!;
  // The index cannot take the new id (on a cluster it lives on another node than the session).
  const index = `${app.prefix}user:alice`;
  await inspect.set(index, 'not a sorted set');
  t.after(async () => {
    await inspect.del(index);
    await inspect.quit();
  });

  const login = await alice.post('/api/login', { username: 'alice' });
  assert.ok(login.status >= 500, `login answered ${login.status}`);
  assert.equal(login.setCookies.length, 0, 'no cookie for a login that did not happen');
  assert.equal(await inspect.exists(`${app.prefix}${before}`), 1, 'the session is still under its old id');
  const view = await alice.get('/api/session');
  assert.deepEqual({ user: view.body.user.startsWith('anon-'), basket: view.body.basket }, { user: true, basket: [{ sku: 'tea', qty: 2 }] });
  assert.equal(alice.sessionId(), before);

  await inspect.del(index);
  const again = await alice.post('/api/login', { username: 'alice' });
  assert.equal(again.status, 200);
  assert.notEqual(alice.sessionId(), before);
  assert.deepEqual((await alice.get('/api/session')).body.basket, [{ sku: 'tea', qty: 2 }]);
  assert.deepEqual(await inspect.zrange(index, '0', '-1'), [alice.sessionId()]);
});

test('Redis stops taking writes mid-login: 503 without a cookie, and once Redis runs what was sent the old cookie still works', async (t) => {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const app = await startApp({ redis_connection_pool: { default: { port: String(server.port), acquire_timeout_ms: '500', command_timeout_ms: '500' } } });
  t.after(() => app.close());
  const inspect = server.client();
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  const before = alice.sessionId()!;
  const key = `${app.prefix}${before}`;
  const index = `${app.prefix}user:alice`;

  // The login's read is answered; its writes wait past command_timeout_ms, then run.
  await server.process.command(['CLIENT', 'PAUSE', '1500', 'WRITE']);
  const login = await alice.post('/api/login', { username: 'alice' });
  assert.equal(login.status, 503);
  assert.equal(login.setCookies.length, 0);
  await eventually("Redis ran the login's writes sent before the 503", 5000, async () => (await inspect.zcard(index)) > 0 || (await inspect.exists(key)) === 0);
  assert.equal(await inspect.exists(key), 1, 'the session is still under the id the cookie names');
  const view = await alice.get('/api/session');
  assert.equal(view.status, 200);
  assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 2 }]);
  assert.equal(view.body.authenticated, false);
  // An index entry left behind names no session (listings prune it): alice is logged in nowhere.
  for (const id of await inspect.zrange(index, '0', '-1')) assert.equal(await inspect.exists(`${app.prefix}${id}`), 0);
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  assert.equal((await alice.get('/api/session')).body.user, 'alice');
});

test('a new login of a logged-in session: its new id is in the user index before the session moves to it', async (t) => {
  // Else a "log out everywhere" between the two would miss the session the login just made.
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const app = await startApp({ redis_connection_pool: { default: { port: String(server.port) } } });
  t.after(() => app.close());
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  const monitor = await server.client().monitor();
  const seen: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => seen.push(args));
  t.after(() => monitor.disconnect());
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  const id = alice.sessionId()!;
  const isRename = (args: string[]) => args[0]?.toLowerCase() === 'fcall' && args[1] === FUNCTION.rename;
  await eventually('the rename seen by MONITOR', 2000, async () => seen.some(isRename));
  const indexed = seen.findIndex((args) => args[0]?.toLowerCase() === 'zadd' && args[1] === `${app.prefix}user:alice` && args.includes(id));
  assert.ok(indexed >= 0, 'the new id was added to the index');
  assert.ok(indexed < seen.findIndex(isRename), `the index add came first: ${seen.map((args) => args.slice(0, 2).join(' ')).join(', ')}`);
});

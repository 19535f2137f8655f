/**
 * `ttl_refresh_slack = 1`: a read refreshes the session's TTL only when 1 % of its idle lifespan
 * has passed since this node's last refresh (src/session/ttl-refreshes.ts): most reads are one
 * HGETALL, and a session still expires between 99 % and 100 % of its lifespan after its last
 * request. Short lifespans here (100 s: the refresh is due after 1 s) on a throwaway
 * redis-server whose commands we count. (The default, 0, refreshes on every read:
 * test/e2e/core-http.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { startApp, startKeepsakeApp, testConfig, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { commandsDuring, RedisServer } from '../support/redis-server.js';

const LIFESPAN_S = 100;
const LIFESPAN_MS = LIFESPAN_S * 1000;
/** 1 % of the lifespan: within it a node does not refresh again. */
const SLACK_MS = LIFESPAN_MS / 100;

let server: RedisServer;
let inspect: Redis;

before(async () => {
  server = await RedisServer.start();
  inspect = server.client();
});

after(async () => {
  inspect?.disconnect();
  await server?.stop();
});

async function node(t: TestContext, prefix: string, session: Record<string, unknown> = {}): Promise<TestApp> {
  const app = await startApp({ session: { key_prefix: prefix, cookie_lifespan: LIFESPAN_S, ttl_refresh_slack: 1, ...session } as never, redis_connection_pool: { default: { port: String(server.port) } } });
  t.after(() => app.close());
  return app;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a read within 1 % of the lifespan of this node’s last refresh is one HGETALL; past it the read refreshes again', async (t) => {
  const app = await node(t, testPrefix('throttle'));
  const client = new Client(app.url);
  assert.equal((await client.put('/api/name', { name: 'Ada' })).status, 200); // the write gave it its full TTL
  const key = app.prefix + client.sessionId();

  const soon = await commandsDuring(server, async () => assert.equal((await client.get('/api/session')).body.name, 'Ada'));
  assert.deepEqual(soon, { hgetall: 1 }, 'refreshed moments ago: no PEXPIRE');

  await sleep(SLACK_MS + 50);
  await inspect.pexpire(key, 50_000); // time has passed for the key too
  const later = await commandsDuring(server, () => client.get('/api/session'));
  assert.deepEqual(later, { hgetall: 1, pexpire: 1 }, 'past 1 % of the lifespan: refreshed with the read');
  assert.ok((await inspect.pttl(key)) > LIFESPAN_MS - 1000, 'back to the full lifespan');
});

test('after every request the session has at least 99 % of its lifespan left', async (t) => {
  const app = await node(t, testPrefix('throttle-exact'));
  const client = new Client(app.url);
  await client.put('/api/name', { name: 'Bo' });
  const key = app.prefix + client.sessionId();
  let refreshes = 0;
  const started = Date.now();
  while (Date.now() - started < 3 * SLACK_MS) {
    const sent = await commandsDuring(server, () => client.get('/api/session'));
    refreshes += sent.pexpire ?? 0;
    const left = await inspect.pttl(key);
    assert.ok(left >= LIFESPAN_MS * 0.99 - 20, `${left} ms left right after a request (lifespan ${LIFESPAN_MS} ms)`);
    await sleep(100);
  }
  assert.ok(refreshes >= 2 && refreshes <= 4, `about one refresh per ${SLACK_MS} ms of requests (got ${refreshes} in ${3 * SLACK_MS} ms)`);
});

test('another node that has not refreshed the session sends the refresh with its read', async (t) => {
  const prefix = testPrefix('throttle-nodes');
  const [a, b] = [await node(t, prefix), await node(t, prefix)];
  const onA = new Client(a.url);
  await onA.put('/api/name', { name: 'Cy' });
  await new Client(b.url).get('/api/session'); // B's pool is open: its handshake is not counted below
  const onB = new Client(b.url);
  onB.cookies = onA.cookies;
  assert.deepEqual(await commandsDuring(server, () => onB.get('/api/session')), { hgetall: 1, pexpire: 1 });
  assert.deepEqual(await commandsDuring(server, () => onB.get('/api/session')), { hgetall: 1 }, 'B refreshed it moments ago');
});

test('an empty session (short TTL) whose cookie comes back gets the full lifespan at once, refreshed or not', async (t) => {
  const app = await node(t, testPrefix('throttle-empty'), { empty_session_lifespan: 10 });
  const client = new Client(app.url);
  await client.get('/api/session'); // created empty: lives 10 s
  const key = app.prefix + client.sessionId();
  assert.ok((await inspect.pttl(key)) <= 10_000);
  await client.get('/api/session'); // the cookie came back, within the slack of the creation
  assert.ok((await inspect.pttl(key)) > LIFESPAN_MS - 1000, 'a returning cookie gives the full lifespan');
});

test('a large session read through its version check follows the same rule', async (t) => {
  const config = testConfig({ session: { key_prefix: testPrefix('throttle-large'), cookie_lifespan: LIFESPAN_S, ttl_refresh_slack: 1 }, redis_connection_pool: { default: { port: String(server.port) } } });
  const app = await startKeepsakeApp(t, config, (fastify, sessions) => {
    fastify.put('/blob', async (request) => {
      (await sessions.start(request)).data.put('blob' as never, 'x'.repeat(20_000) as never);
      return { ok: true };
    });
    fastify.get('/size', async (request) => ({ length: String((await sessions.start(request)).data.get('blob' as never) ?? '').length }));
  });
  const client = new Client(app.url);
  assert.equal((await client.put('/blob', {})).status, 200);
  assert.deepEqual((await client.get('/size')).body, { length: 20_000 }); // this node keeps a copy now
  const key = app.prefix + client.sessionId();
  const soon = await commandsDuring(server, () => client.get('/size'));
  // commandstats also counts what the function runs (its HMGETs, EXISTS instead of PEXPIRE).
  assert.equal(soon.fcall, 1, 'the version check alone');
  assert.equal(soon.pexpire, undefined, `no PEXPIRE within the slack (${JSON.stringify(soon)})`);
  assert.equal(soon.hgetall, undefined, 'served from the copy');
  await sleep(SLACK_MS + 50);
  await inspect.pexpire(key, 50_000);
  assert.deepEqual((await client.get('/size')).body, { length: 20_000 });
  assert.ok((await inspect.pttl(key)) > LIFESPAN_MS - 1000, 'refreshed past the slack');
});

test('a logged-in user’s index never expires before a session it lists (absolute_lifespan = 0: both roll)', async (t) => {
  const app = await node(t, testPrefix('throttle-index'), { absolute_lifespan: 0 });
  const client = new Client(app.url);
  assert.equal((await client.post('/api/login', { username: 'dee' })).status, 200);
  const key = app.prefix + client.sessionId();
  const index = `${app.prefix}user:dee`;
  assert.equal(await inspect.exists(index), 1, 'the user index key exists');
  const started = Date.now();
  while (Date.now() - started < 2 * SLACK_MS + 200) {
    await client.get('/api/session');
    const [session, listed] = [await inspect.pttl(key), await inspect.pttl(index)];
    assert.ok(listed >= session, `index PTTL ${listed} ≥ session PTTL ${session}`);
    await sleep(150);
  }
});

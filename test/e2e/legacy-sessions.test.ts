/**
 * Switching to keepsake without logging anyone out: real @fastify/session and express-session
 * apps (connect-redis) create sessions with data and a logged-in user on the shared Redis, then
 * the demo app with a [legacy_sessions] section serves the same visitors.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { sign } from 'cookie-signature';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { startExpressSessionApp, startFastifySessionApp, type LegacyApp } from '../support/legacy-apps.js';
import { WsClient } from '../support/ws-client.js';
import { dropPrefix, inspector, sessionCookie } from '../support/session-helpers.js';

const redis = inspector();
const OLD_SECRET = 'retired-secret-of-the-old-app-0123456789';
const LEGACY_SECRET = 'legacy-app-secret'; // any length: the old library chose it
const basket = [{ sku: 'tea', qty: 2 }];
const prefixes: string[] = [];
const closers: (() => Promise<void>)[] = [];

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const prefix of prefixes) await dropPrefix(redis, prefix);
  redis.disconnect();
});

const libraries = [
  { name: '@fastify/session', start: startFastifySessionApp, cookieName: 'sessionId' },
  { name: 'express-session', start: startExpressSessionApp, cookieName: 'connect.sid' },
] as const;

/** A legacy app and keepsake nodes over the same Redis: keepsake knows the old secrets, in any order. */
async function setUp(library: (typeof libraries)[number], nodes = 1): Promise<{ legacy: LegacyApp; keepsake: TestApp[]; legacyPrefix: string }> {
  const legacyPrefix = testPrefix('legacy');
  prefixes.push(legacyPrefix);
  const legacy = await library.start({ prefix: legacyPrefix, secrets: [LEGACY_SECRET, OLD_SECRET], cookieName: library.cookieName });
  closers.push(() => legacy.close());
  const session = { key_prefix: testPrefix('adopt') };
  prefixes.push(session.key_prefix);
  const legacy_sessions = { cookie_name: library.cookieName, secrets: `${OLD_SECRET}, ${LEGACY_SECRET}`, key_prefix: legacyPrefix, user_field: 'user' };
  const keepsake: TestApp[] = [];
  for (let i = 0; i < nodes; i++) {
    const app = await startApp({ session, legacy_sessions });
    closers.push(() => app.close());
    keepsake.push(app);
  }
  return { legacy, keepsake, legacyPrefix };
}

/** A visitor of the legacy app: logged in, with a name and a basket. Returns their legacy cookie pair. */
async function legacyVisitor(legacy: LegacyApp, user = 'alice'): Promise<{ cookie: string; legacyId: string }> {
  const client = new Client(legacy.url);
  const seeded = await client.request('POST', '/seed', { user, name: 'Ada', basket });
  assert.equal(seeded.status, 200);
  const value = client.cookies.get(legacy.cookieName);
  assert.ok(value, 'the legacy app set its cookie');
  const dump = await client.request('GET', '/dump');
  assert.deepEqual(dump.body, { user, name: 'Ada', basket }, 'the legacy app itself reads its session back');
  const unsigned = decodeURIComponent(value).replace(/^s:/, '');
  return { cookie: `${legacy.cookieName}=${value}`, legacyId: unsigned.slice(0, unsigned.lastIndexOf('.')) };
}

for (const library of libraries) {
  test(`${library.name}: one request adopts the session with its data and login; the legacy key is gone, the legacy cookie cleared`, async () => {
    const { legacy, keepsake, legacyPrefix } = await setUp(library);
    const { cookie, legacyId } = await legacyVisitor(legacy);
    assert.equal(await redis.exists(legacyPrefix + legacyId), 1);

    const reply = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
    assert.equal(reply.status, 200);
    assert.deepEqual((await reply.json()) as any, { user: 'alice', authenticated: true, name: 'Ada', basket });
    const setCookies = reply.headers.getSetCookie();
    const own = sessionCookie(setCookies);
    assert.ok(own, 'keepsake set its own cookie');
    const cleared = sessionCookie(setCookies, library.cookieName);
    assert.ok(cleared, 'the legacy cookie is cleared');
    assert.equal(cleared.value, '');
    assert.equal(cleared.attributes.get('max-age'), '0');
    assert.equal(cleared.attributes.get('path'), '/');
    assert.equal(await redis.exists(legacyPrefix + legacyId), 0, 'the legacy key is deleted');
    assert.ok((await redis.pttl(`${keepsake[0]!.prefix}legacy:${legacyId}`)) > 0, 'the claim marker has a TTL');

    // The visitor now holds keepsake's cookie only: same data, same login, the user index knows it.
    const next = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie: `dmsession=${own.value}` } });
    assert.deepEqual((await next.json()) as any, { user: 'alice', authenticated: true, name: 'Ada', basket });
    assert.deepEqual(await redis.zrange(`${keepsake[0]!.prefix}user:alice`, '0', '-1'), [own.id]);

    // A request still in flight with the legacy cookie joins the same session: never adopted twice.
    const late = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
    assert.equal(sessionCookie(late.headers.getSetCookie())?.id, own.id);
    assert.deepEqual(((await late.json()) as any).basket, basket);
    const metrics = await (await fetch(`${keepsake[0]!.url}/metrics`)).text();
    assert.match(metrics, /^keepsake_legacy_sessions_adopted_total 1$/m);
  });

  test(`${library.name}: a tampered legacy cookie is ignored: a new empty session, the legacy session untouched`, async () => {
    const { legacy, keepsake, legacyPrefix } = await setUp(library);
    const { cookie, legacyId } = await legacyVisitor(legacy);
    const at = cookie.length - 3;
    const tampered = cookie.slice(0, at) + (cookie[at] === 'A' ? 'B' : 'A') + cookie.slice(at + 1);
    const reply = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie: tampered } });
    assert.equal(reply.status, 200);
    const view = (await reply.json()) as any;
    assert.equal(view.authenticated, false);
    assert.equal(view.name, null);
    assert.deepEqual(view.basket, []);
    assert.ok(sessionCookie(reply.headers.getSetCookie()), 'a new keepsake session');
    assert.equal(sessionCookie(reply.headers.getSetCookie(), library.cookieName), undefined, 'a cookie that does not verify is left alone');
    assert.equal(await redis.exists(legacyPrefix + legacyId), 1, 'the legacy session is not adopted');
    // An id the old app never signed (the id alone, or with the signature of another id) is refused too.
    const bare = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie: `${library.cookieName}=${legacyId}` } });
    assert.equal(((await bare.json()) as any).authenticated, false);
    assert.equal(await redis.exists(legacyPrefix + legacyId), 1);
  });
}

test('20 concurrent first requests over two nodes end in one session holding the data once', async () => {
  const { legacy, keepsake, legacyPrefix } = await setUp(libraries[1], 2);
  const { cookie, legacyId } = await legacyVisitor(legacy, 'bob');
  const ids = new Set<string>();
  let retried = 0;
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const node = keepsake[i % 2]!;
      for (;;) {
        const reply = await fetch(`${node.url}/api/session`, { headers: { cookie } });
        if (reply.status === 503) {
          // The only other answer allowed: retryable, while the claimer is still at work.
          assert.equal(((await reply.json()) as any).error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
          assert.ok(reply.headers.get('retry-after'));
          retried++;
          continue;
        }
        assert.equal(reply.status, 200);
        assert.deepEqual((await reply.json()) as any, { user: 'bob', authenticated: true, name: 'Ada', basket });
        const own = sessionCookie(reply.headers.getSetCookie());
        assert.ok(own);
        ids.add(own.id);
        return;
      }
    }),
  );
  assert.equal(ids.size, 1, `one session for every request (${retried} retried after a 503)`);
  const [id] = ids;
  const sessionKeys = (await redis.keys(`${keepsake[0]!.prefix}*`)).filter((key) => !key.slice(keepsake[0]!.prefix.length).includes(':') && !key.endsWith('legacy-stats'));
  assert.deepEqual(sessionKeys, [keepsake[0]!.prefix + id], 'exactly one keepsake session was stored');
  assert.deepEqual(await redis.zrange(`${keepsake[0]!.prefix}user:bob`, '0', '-1'), [id]);
  assert.equal(await redis.exists(legacyPrefix + legacyId), 0);
  assert.equal(await redis.hget(`${keepsake[0]!.prefix}legacy-stats`, 'adopted'), '1');
  let adoptions = 0;
  for (const node of keepsake) adoptions += Number(/^keepsake_legacy_sessions_adopted_total (\d+)$/m.exec(await (await fetch(`${node.url}/metrics`)).text())?.[1] ?? 0);
  assert.equal(adoptions, 1, 'adopted once over both nodes');
});

test('values keepsake refuses are skipped and counted, never a 500', async () => {
  const { keepsake, legacyPrefix } = await setUp(libraries[0]);
  // connect-redis's JSON as @fastify/session writes it, plus a field name keepsake refuses (over 200 characters).
  const legacyId = 'skipvaluesxxxxxxxxxxxxxxxxxxxxxx';
  await redis.set(legacyPrefix + legacyId, JSON.stringify({ cookie: { originalMaxAge: 86400000, path: '/' }, name: 'Ada', ['k'.repeat(201)]: 1 }), 'EX', 600);
  const reply = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie: `sessionId=${sign(legacyId, LEGACY_SECRET)}` } });
  assert.equal(reply.status, 200);
  const view = (await reply.json()) as any;
  assert.equal(view.name, 'Ada');
  assert.equal(view.authenticated, false);
  assert.equal(await redis.exists(legacyPrefix + legacyId), 0);
  const metrics = await (await fetch(`${keepsake[0]!.url}/metrics`)).text();
  assert.match(metrics, /^keepsake_legacy_session_values_skipped_total 1$/m);
  assert.equal(await redis.hget(`${keepsake[0]!.prefix}legacy-stats`, 'skipped'), '1');
  assert.ok((await redis.pttl(`${keepsake[0]!.prefix}legacy-stats`)) > 0, 'the counters have a TTL');
});

test('a claimer that died mid-adoption costs a retryable 503 while its claim lives, never the session', async () => {
  const { legacy, keepsake, legacyPrefix } = await setUp(libraries[0]);
  const { cookie, legacyId } = await legacyVisitor(legacy);
  const marker = `${keepsake[0]!.prefix}legacy:${legacyId}`;
  // A node claimed the legacy session and crashed before storing anything.
  await redis.set(marker, 'pending:crashed', 'PX', 60_000);
  const waiting = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
  assert.equal(waiting.status, 503);
  assert.equal(((await waiting.json()) as any).error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
  assert.equal(waiting.headers.get('retry-after'), '1');
  assert.equal(sessionCookie(waiting.headers.getSetCookie()), undefined, 'no cookie names a session that was not stored');
  assert.equal(await redis.exists(legacyPrefix + legacyId), 1, 'the legacy session is intact');
  // Its claim expires (shortened here): the next request adopts.
  await redis.pexpire(marker, 200);
  const adopted = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
  assert.equal(adopted.status, 200);
  assert.deepEqual(await adopted.json(), { user: 'alice', authenticated: true, name: 'Ada', basket });
  assert.equal(await redis.exists(legacyPrefix + legacyId), 0);
});

test('after logout in keepsake the old legacy cookie is spent: a new empty session, and it is cleared', async () => {
  const { legacy, keepsake } = await setUp(libraries[1]);
  const { cookie } = await legacyVisitor(legacy);
  const client = new Client(keepsake[0]!.url);
  const adopted = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
  client.cookies.set('dmsession', sessionCookie(adopted.headers.getSetCookie())!.value);
  assert.equal((await client.request('POST', '/api/logout')).status, 200);
  const replay = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
  assert.equal(replay.status, 200);
  const view = (await replay.json()) as any;
  assert.equal(view.authenticated, false);
  assert.equal(view.name, null);
  assert.deepEqual(view.basket, []);
  assert.equal(sessionCookie(replay.headers.getSetCookie(), legacy.cookieName)?.attributes.get('max-age'), '0');
  assert.notEqual(sessionCookie(replay.headers.getSetCookie())?.id, sessionCookie(adopted.headers.getSetCookie())?.id);
});

test('a WebSocket handshake with only a legacy cookie adopts nothing: the socket is anonymous', async () => {
  const { legacy, keepsake, legacyPrefix } = await setUp(libraries[0]);
  const { cookie, legacyId } = await legacyVisitor(legacy);
  const socket = await WsClient.open(`${keepsake[0]!.url.replace('http', 'ws')}/ws`, { cookie });
  try {
    const hello = await socket.next((message) => message.type === 'hello');
    assert.equal(hello.authenticated, false);
    assert.equal(hello.name, null);
  } finally {
    await socket.close();
  }
  assert.equal(await redis.exists(legacyPrefix + legacyId), 1, 'the legacy session waits for an HTTP request');
});

test('a claimer that died after storing the session but before deleting the legacy key: the next request joins it and the key goes', async () => {
  const { legacy, keepsake, legacyPrefix } = await setUp(libraries[1]);
  const { cookie, legacyId } = await legacyVisitor(legacy);
  const json = (await redis.get(legacyPrefix + legacyId))!;
  const first = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
  const id = sessionCookie(first.headers.getSetCookie())!.id;
  // As if its node had died between step 4 (marker names the session) and step 5 (delete).
  await redis.set(legacyPrefix + legacyId, json, 'EX', 600);
  const again = await fetch(`${keepsake[0]!.url}/api/session`, { headers: { cookie } });
  assert.equal(sessionCookie(again.headers.getSetCookie())?.id, id, 'the same session, not a second adoption');
  assert.deepEqual(await again.json(), { user: 'alice', authenticated: true, name: 'Ada', basket });
  assert.equal(await redis.exists(legacyPrefix + legacyId), 0);
  assert.equal(await redis.hget(`${keepsake[0]!.prefix}legacy-stats`, 'adopted'), '1');
});

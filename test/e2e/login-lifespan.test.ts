/**
 * `regenerate(request, { userId, lifespan })`: a login chooses the session's idle lifespan
 * ("remember me", a kiosk) instead of cookie_lifespan. It holds for the cookie's Max-Age, the
 * Redis TTL of the login, of every later load and write (on any node: it is stored as `m:l`), and
 * the user index; absolute_lifespan still caps it. A bad value is a typed error, nothing changed.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyReply } from 'fastify';
import { startKeepsakeApp, testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector, sessionCookie } from '../support/session-helpers.js';
import { KeepsakeError, type KeepsakeConfigInput } from '../../src/index.js';

const redis = inspector();
const prefixes: string[] = [];
const DAY = 86400;

after(async () => {
  for (const prefix of prefixes) await dropPrefix(redis, prefix);
  redis.disconnect();
});

/** An app with /login (body: user, lifespan), /visit (reads), /put (writes) and /big (a value over 8 KiB). */
async function app(t: TestContext, session: Record<string, unknown> = {}) {
  const prefix = (session.key_prefix as string | undefined) ?? testPrefix('lifespan');
  prefixes.push(prefix);
  const config = testConfig({ session: { key_prefix: prefix, cookie_lifespan: DAY, absolute_lifespan: 0, ...session } } as KeepsakeConfigInput);
  return startKeepsakeApp(t, config, (fastify, sessions) => {
    fastify.post('/login', async (request, reply: FastifyReply) => {
      const { user, lifespan } = request.body as { user?: string; lifespan?: unknown };
      try {
        const session = await sessions.regenerate(request, { userId: user, lifespan: lifespan as number });
        return { id: session.id };
      } catch (error) {
        if (!(error instanceof KeepsakeError)) throw error;
        return reply.code(422).send({ code: error.code, message: error.message });
      }
    });
    fastify.get('/visit', async (request) => ({ user: (await sessions.start(request)).meta.userId }));
    fastify.post('/put', async (request) => {
      (await sessions.start(request)).data.put('note' as never, String(Date.now()) as never);
      return {};
    });
    // Slow work before a write: the load's refresh is then stale, so the write carries the TTL itself.
    fastify.post('/slow-writes', async (request) => {
      const session = await sessions.start(request);
      await new Promise((resolve) => setTimeout(resolve, 1200));
      session.data.put('note' as never, 'slow' as never);
      await session.data.update('count' as never, ((n: number = 0) => n + 1) as never);
      return {};
    });
    fastify.post('/big', async (request) => {
      (await sessions.start(request)).data.put('big' as never, 'x'.repeat(12_000) as never);
      return {};
    });
  });
}

const maxAge = (setCookies: string[]) => sessionCookie(setCookies)?.attributes.get('max-age');

test('a login with lifespan 2 s: Max-Age=2, PTTL ≤ 2000 after the login, a load and a write; gone after ~2.5 s', async (t) => {
  const { url, prefix } = await app(t);
  const client = new Client(url);
  await client.post('/put');
  const login = await client.post('/login', { user: 'kiosk', lifespan: 2 });
  assert.equal(login.status, 200);
  assert.equal(maxAge(login.setCookies), '2', 'the cookie lives the chosen lifespan');
  const key = prefix + client.sessionId()!;
  const afterLogin = await redis.pttl(key);
  assert.ok(afterLogin > 0 && afterLogin <= 2000, `the login's TTL is the chosen lifespan (PTTL ${afterLogin})`);

  assert.equal((await client.get('/visit')).body.user, 'kiosk');
  const afterLoad = await redis.pttl(key);
  assert.ok(afterLoad > 0 && afterLoad <= 2000, `a load refreshes to the chosen lifespan, not cookie_lifespan (PTTL ${afterLoad})`);
  await client.post('/put');
  const afterWrite = await redis.pttl(key);
  assert.ok(afterWrite > 0 && afterWrite <= 2000, `a write refreshes to the chosen lifespan (PTTL ${afterWrite})`);
  const index = await redis.pttl(`${prefix}user:kiosk`);
  assert.ok(index >= afterWrite, `the user index outlives the session (index PTTL ${index}, session ${afterWrite})`);

  const waited = await eventually('the 2 s session expired', 4000, async () => (await redis.exists(key)) === 0);
  assert.ok(waited >= 1000, `it ended only after its lifespan (${waited} ms)`);
  const again = await client.get('/visit');
  assert.equal(again.body.user, null, 'its cookie starts a new anonymous session');
});

test('a large session (over 8 KiB, read from the node copy through the load function) keeps its chosen lifespan', async (t) => {
  const { url, prefix } = await app(t);
  const client = new Client(url);
  await client.post('/big');
  await client.post('/login', { user: 'big', lifespan: 3 });
  const key = prefix + client.sessionId()!;
  for (let i = 0; i < 3; i++) {
    await client.get('/visit');
    const pttl = await redis.pttl(key);
    assert.ok(pttl > 0 && pttl <= 3000, `load ${i + 1} keeps the chosen lifespan (PTTL ${pttl})`);
  }
});

test('a long lifespan ("remember me") gives Max-Age and PTTL of it; absolute_lifespan still caps both', async (t) => {
  const month = 30 * DAY;
  const { url, prefix } = await app(t);
  const client = new Client(url);
  const login = await client.post('/login', { user: 'ada', lifespan: month });
  assert.equal(maxAge(login.setCookies), String(month));
  const key = prefix + client.sessionId()!;
  assert.ok((await redis.pttl(key)) > (month - 60) * 1000);
  await client.get('/visit');
  assert.ok((await redis.pttl(key)) > (month - 60) * 1000, 'a load keeps the month, not cookie_lifespan');
  assert.ok((await redis.pttl(`${prefix}user:ada`)) > month * 1000, 'the user index outlives it');

  const capped = await app(t, { absolute_lifespan: 7 * DAY });
  const other = new Client(capped.url);
  const cappedLogin = await other.post('/login', { user: 'bob', lifespan: month });
  const cappedAge = Number(maxAge(cappedLogin.setCookies));
  assert.ok(cappedAge <= 7 * DAY && cappedAge > 7 * DAY - 60, `Max-Age is cut at the absolute end (${cappedAge})`);
  const cappedKey = capped.prefix + other.sessionId()!;
  for (const step of ['login', 'load']) {
    if (step === 'load') await other.get('/visit');
    const pttl = await redis.pttl(cappedKey);
    assert.ok(pttl <= 7 * DAY * 1000 && pttl > (7 * DAY - 60) * 1000, `after the ${step} the TTL is cut at the absolute end (PTTL ${pttl})`);
  }
});

test('a later login without lifespan goes back to cookie_lifespan', async (t) => {
  const { url, prefix } = await app(t);
  const client = new Client(url);
  await client.post('/login', { user: 'ann', lifespan: 60 });
  const login = await client.post('/login', { user: 'ann' });
  assert.equal(maxAge(login.setCookies), String(DAY));
  const key = prefix + client.sessionId()!;
  await client.get('/visit');
  assert.ok((await redis.pttl(key)) > (DAY - 60) * 1000);
  assert.equal(await redis.hexists(key, 'm:l'), 0);
});

for (const bad of [0, -5, 1.5, 400 * DAY + 1, '60', null]) {
  test(`lifespan ${JSON.stringify(bad)} is refused with ERR_SESSION_LIFESPAN_INVALID and nothing changes`, async (t) => {
    const { url, prefix } = await app(t);
    const client = new Client(url);
    await client.post('/put');
    const id = client.sessionId()!;
    const before = await redis.hgetall(prefix + id);
    const refused = await client.post('/login', { user: 'eve', lifespan: bad });
    assert.equal(refused.status, 422);
    assert.equal(refused.body.code, 'ERR_SESSION_LIFESPAN_INVALID');
    assert.match(refused.body.message, new RegExp(String(bad).replace('.', '\\.')));
    assert.equal(refused.setCookies.length, 0, 'no new cookie');
    assert.equal(client.sessionId(), id);
    assert.deepEqual(await redis.hgetall(prefix + id), before, 'the session is untouched');
    assert.equal(await redis.exists(`${prefix}user:eve`), 0, 'no user index entry');
  });
}

test('a write that refreshes the TTL itself (put, then update() after slow work) uses the chosen lifespan', async (t) => {
  const { url, prefix } = await app(t);
  const client = new Client(url);
  await client.post('/login', { user: 'slow', lifespan: 30 });
  const key = prefix + client.sessionId()!;
  assert.equal((await client.post('/slow-writes')).status, 200);
  const pttl = await redis.pttl(key);
  assert.ok(pttl > 25_000 && pttl <= 30_000, `the writes refreshed to 30 s, not cookie_lifespan (PTTL ${pttl})`);
});

test('the cookie is re-sent once a tenth of the chosen lifespan has passed (not of cookie_lifespan)', async (t) => {
  const { url } = await app(t);
  const client = new Client(url);
  const login = await client.post('/login', { user: 'step', lifespan: 20 });
  assert.equal(maxAge(login.setCookies), '20');
  assert.equal((await client.get('/visit')).setCookies.length, 0, 'not re-sent right after the login');
  let resent: string | undefined;
  await eventually('the cookie is re-sent after 2 s', 6000, async () => {
    resent = maxAge((await client.get('/visit')).setCookies);
    return resent !== undefined;
  }, 250);
  assert.equal(resent, '20', 'with the chosen Max-Age');
});

test('another node, which never saw the login, refreshes with the stored lifespan too', async (t) => {
  const first = await app(t);
  const second = await app(t, { key_prefix: first.prefix });
  const client = new Client(first.url);
  await client.post('/login', { user: 'roam', lifespan: 5 });
  const key = first.prefix + client.sessionId()!;
  const elsewhere = new Client(second.url);
  elsewhere.cookies = new Map(client.cookies);
  for (let i = 0; i < 2; i++) {
    assert.equal((await elsewhere.get('/visit')).body.user, 'roam');
    const pttl = await redis.pttl(key);
    assert.ok(pttl > 0 && pttl <= 5000, `load ${i + 1} on the other node keeps 5 s (PTTL ${pttl})`);
  }
});

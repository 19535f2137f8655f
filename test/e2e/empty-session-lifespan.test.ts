/**
 * `session.empty_session_lifespan`: a session created by a request that left nothing in it
 * (a cookie-less GET of a route that starts the session, a bot) lives that long in Redis, not
 * cookie_lifespan; its first data write gives it the full lifespan. The cookie's Max-Age stays
 * cookie_lifespan either way.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector, sessionCookie } from '../support/session-helpers.js';
import { ConfigError, parseConfigText } from '../../src/index.js';

const redis = inspector();
const prefixes: string[] = [];
const FULL_MS = 86400 * 1000;

after(async () => {
  for (const prefix of prefixes) await dropPrefix(redis, prefix);
  redis.disconnect();
});

async function app(t: TestContext, session: Record<string, unknown>): Promise<TestApp> {
  const started = await startApp({ session: { key_prefix: testPrefix('empty-life'), ...session } as never });
  prefixes.push(started.prefix);
  t.after(() => started.close());
  return started;
}

test('a cookie-less GET leaves a key that lives empty_session_lifespan; after a put it lives cookie_lifespan', async (t) => {
  const { url, prefix } = await app(t, { empty_session_lifespan: 5 });
  const client = new Client(url);
  const visit = await client.get('/api/session');
  assert.equal(visit.status, 200);
  assert.equal(sessionCookie(visit.setCookies)?.attributes.get('max-age'), '86400', 'the cookie keeps Max-Age = cookie_lifespan');
  const key = prefix + client.sessionId()!;
  const short = await redis.pttl(key);
  assert.ok(short > 0 && short <= 5000, `an empty session lives empty_session_lifespan (PTTL ${short})`);

  assert.equal((await client.put('/api/name', { name: 'Eve' })).status, 200);
  const full = await redis.pttl(key);
  assert.ok(full > FULL_MS - 60_000, `with data it lives cookie_lifespan (PTTL ${full})`);
});

test('an empty session ends after empty_session_lifespan; its cookie then starts a new one', async (t) => {
  const { url, prefix } = await app(t, { empty_session_lifespan: 1 });
  const client = new Client(url);
  await client.get('/api/session');
  const id = client.sessionId()!;
  await eventually('the empty session expired', 4000, async () => (await redis.exists(prefix + id)) === 0);
  await client.get('/api/session');
  assert.notEqual(client.sessionId(), id);
});

for (const persist of ['before_response', 'after_response'] as const) {
  test(`a first request that writes data (${persist}): put and update() give the full lifespan at once`, async (t) => {
    const { url, prefix } = await app(t, { empty_session_lifespan: 5, persist });
    const named = new Client(url);
    await named.put('/api/name', { name: 'Ann' });
    const shopper = new Client(url);
    assert.equal((await shopper.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
    for (const client of [named, shopper]) {
      const key = prefix + client.sessionId()!;
      await eventually('the data is written', 3000, async () => (await redis.hlen(key)) > 3, 20);
      await eventually('the session lives cookie_lifespan', 3000, async () => (await redis.pttl(key)) > FULL_MS - 60_000, 20);
    }
  });
}

test('empty_session_lifespan = 0: an empty session lives cookie_lifespan', async (t) => {
  const { url, prefix } = await app(t, { empty_session_lifespan: 0 });
  const client = new Client(url);
  await client.get('/api/session');
  const ttl = await redis.pttl(prefix + client.sessionId()!);
  assert.ok(ttl > FULL_MS - 60_000, `PTTL ${ttl}`);
});

test('empty_session_lifespan: default 600; a negative or non-integer value is refused naming the key', () => {
  const base = `[session]\nsecrets = ${'a'.repeat(32)}\n`;
  assert.equal(parseConfigText(base, 'ok.ini', { env: {} }).session.empty_session_lifespan, 600);
  assert.equal(parseConfigText(`${base}empty_session_lifespan = 0\n`, 'ok.ini', { env: {} }).session.empty_session_lifespan, 0);
  for (const value of ['-1', 'ten', '1.5']) {
    assert.throws(
      () => parseConfigText(`${base}empty_session_lifespan = ${value}\n`, 'bad.ini', { env: {} }),
      (error: unknown) => error instanceof ConfigError && error.code === 'ERR_CONFIG_INVALID' && /empty_session_lifespan/.test(error.message) && error.message.includes(value),
    );
  }
});

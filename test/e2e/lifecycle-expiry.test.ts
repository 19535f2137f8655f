/**
 * Expiry with short lifespans: idle timeout (cookie_lifespan, refreshed on use, cookie Max-Age in
 * step) and absolute lifetime (absolute_lifespan from creation, checked on the server; no Redis
 * key outlives it). The two cases run side by side to keep the file short.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector, sessionCookie, sleep } from '../support/session-helpers.js';

const redis = inspector();
const prefixes: string[] = [];

async function app(t: { after: (fn: () => Promise<void>) => void }, session: Record<string, unknown>): Promise<TestApp> {
  const started = await startApp({ session: { key_prefix: testPrefix('expiry'), ...session } as never });
  prefixes.push(started.prefix);
  t.after(() => started.close());
  return started;
}

after(async () => {
  for (const prefix of prefixes) await dropPrefix(redis, prefix);
  redis.disconnect();
});

describe('expiry', { concurrency: 2 }, () => {
  test('idle timeout: each use pushes the TTL forward; cookie_lifespan without a request ends the session', async (t) => {
    const { url, prefix } = await app(t, { cookie_lifespan: 2, absolute_lifespan: 0 });
    const client = new Client(url);
    const first = await client.put('/api/name', { name: 'Ida' });
    const id = client.sessionId()!;
    assert.equal(sessionCookie(first.setCookies)?.attributes.get('max-age'), '2', 'cookie Max-Age = cookie_lifespan');
    const ttl = await redis.pttl(prefix + id);
    assert.ok(ttl > 0 && ttl <= 2000, `Redis TTL = cookie_lifespan (got ${ttl})`);

    await client.post('/api/login', { username: 'ida' });
    const loggedIn = client.sessionId()!;
    const index = `${prefix}user:ida`;
    assert.ok((await redis.pttl(index)) >= (await redis.pttl(prefix + loggedIn)), 'the user index lives at least as long as the session');

    // Used every 1.2 s, the session outlives its 2 s lifespan...
    for (let round = 0; round < 2; round++) {
      await sleep(1200);
      const reply = await client.get('/api/session');
      assert.equal(reply.body.name, 'Ida', `alive after ${(round + 1) * 1.2} s of use`);
      assert.equal(client.sessionId(), loggedIn);
      const refreshed = await redis.pttl(prefix + loggedIn);
      assert.ok(refreshed > 1500, `the TTL was refreshed (got ${refreshed})`);
      const cookie = sessionCookie(reply.setCookies);
      if (cookie !== undefined) assert.equal(cookie.id, loggedIn, 'a re-sent cookie keeps the id');
      // The index refresh is sent after the reply.
      await eventually('the index TTL keeps pace', 1000, async () => (await redis.pttl(index)) >= (await redis.pttl(prefix + loggedIn)), 20);
    }
    // ...and ends once it sits idle for longer than that.
    await sleep(2300);
    assert.equal(await redis.exists(prefix + loggedIn), 0, 'Redis expired it');
    const later = await client.get('/api/session');
    assert.equal(later.body.name, null);
    assert.equal(later.body.authenticated, false);
    assert.notEqual(client.sessionId(), loggedIn, 'a new session, not the old id');
  });

  test('absolute lifetime: the session ends absolute_lifespan after creation however busy; no key outlives it', async (t) => {
    const { url, prefix } = await app(t, { cookie_lifespan: 2, absolute_lifespan: 3 });
    const client = new Client(url);
    await client.put('/api/name', { name: 'Abe' });
    await client.post('/api/login', { username: 'abe' });
    const id = client.sessionId()!;
    const createdAt = Number(await redis.hget(prefix + id, 'm:c'));
    const end = createdAt + 3000;
    const index = `${prefix}user:abe`;
    const indexTtl = await redis.pttl(index);
    assert.ok(indexTtl > 0 && indexTtl <= end - Date.now() + 50, `the index expires at the absolute end (ttl ${indexTtl})`);

    for (const at of [1200, 2400]) {
      await sleep(createdAt + at - Date.now());
      const reply = await client.get('/api/session');
      assert.equal(reply.body.name, 'Abe', `alive at ${at} ms`);
      assert.equal(client.sessionId(), id);
      // The cap is sent after the reply.
      await eventually(`the Redis TTL capped at the absolute end (${end - Date.now()} ms left)`, 1000, async () => {
        const ttl = await redis.pttl(prefix + id);
        return ttl > 0 && ttl <= end - Date.now() + 50;
      }, 20);
      const cookie = sessionCookie(reply.setCookies);
      if (cookie !== undefined) assert.ok(Number(cookie.attributes.get('max-age')) <= Math.ceil((end - Date.now()) / 1000) + 1, 'cookie Max-Age stops at the absolute end');
    }
    // A write near the end does not push the TTL past it either.
    await client.put('/api/name', { name: 'Abe 2' });
    const ttl = await redis.pttl(prefix + id);
    assert.ok(ttl > 0 && ttl <= end - Date.now() + 50, `a write keeps the cap (ttl ${ttl})`);

    await sleep(end + 200 - Date.now());
    const later = await client.get('/api/session');
    assert.equal(later.status, 200);
    assert.equal(later.body.name, null, 'past the absolute end: a new session');
    assert.notEqual(client.sessionId(), id);
    assert.equal(await redis.exists(prefix + id), 0);
    assert.equal(await redis.exists(index), 0, 'the index expired with its last session');
  });

  test('absolute lifetime is checked on the server even while the Redis key still exists', async (t) => {
    const { url, prefix } = await app(t, { cookie_lifespan: 60, absolute_lifespan: 1 });
    const client = new Client(url);
    await client.put('/api/name', { name: 'Old' });
    const id = client.sessionId()!;
    // Age the session behind keepsake's back: created long ago, TTL still far away.
    await redis.hset(prefix + id, 'm:c', String(Date.now() - 10_000));
    await redis.pexpire(prefix + id, 60_000);
    const reply = await client.get('/api/session');
    assert.equal(reply.body.name, null);
    assert.notEqual(client.sessionId(), id);
    assert.equal(await redis.exists(prefix + id), 0, 'removed when found past its end');
  });
});

/**
 * Logout and a new session in the same request (`destroy()` then `start()`), as express-session
 * users do after `destroy` + a new login: the new session is created and stored, its cookie set,
 * and what the request left in it (data, a flash) is there on the next request.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startKeepsakeApp, testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector, sessionCookie } from '../support/session-helpers.js';

const redis = inspector();
const prefix = testPrefix('destroy-start');

after(async () => {
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

async function app(t: TestContext, persist: 'before_response' | 'after_response' = 'before_response'): Promise<Client> {
  const { url } = await startKeepsakeApp(t, testConfig({ session: { key_prefix: prefix, persist } as never }), (server, sessions) => {
    server.post('/visit', async (request) => {
      const session = await sessions.start(request);
      session.data.put('name', 'Old');
      return { id: session.id };
    });
    // Logout, then a new anonymous session that says goodbye on the next page.
    server.post('/logout-then-start', async (request) => {
      await sessions.destroy(request);
      const session = await sessions.start(request);
      session.data.put('name', 'New');
      session.flash('notice', 'bye');
      return { id: session.id, name: session.data.get('name') };
    });
    // The same, by a controller that had started the session before ending it.
    server.post('/start-logout-start', async (request) => {
      const old = await sessions.start(request);
      await sessions.destroy(request);
      const session = await sessions.start(request);
      assert.notEqual(session, old, 'start() after destroy() is a new session, not the destroyed one');
      session.flash('notice', 'bye');
      return { id: session.id, name: session.data.get('name') ?? null };
    });
    server.get('/page', async (request) => {
      const session = await sessions.start(request);
      return { id: session.id, name: session.data.get('name') ?? null, notice: session.flashed('notice') ?? null };
    });
  });
  return new Client(url);
}

for (const route of ['/logout-then-start', '/start-logout-start']) {
  for (const persist of ['before_response', 'after_response'] as const) {
    test(`${route} (${persist}): the new session is stored, its cookie set, its data and flash on the next request; the old one is gone`, async (t) => {
      const client = await app(t, persist);
      const oldId = (await client.post('/visit')).body.id as string;
      assert.equal(await redis.exists(prefix + oldId), 1);

      const reply = await client.post(route);
      assert.equal(reply.status, 200);
      const newId = reply.body.id as string;
      assert.notEqual(newId, oldId);
      const cookie = sessionCookie(reply.setCookies);
      assert.ok(cookie !== undefined, 'the reply sets a cookie');
      assert.equal(cookie.id, newId, 'the cookie names the new session (not a clearing of the old one)');
      assert.notEqual(cookie.attributes.get('max-age'), '0');
      assert.equal(reply.setCookies.filter((header) => header.startsWith('dmsession=')).length, 1, 'one Set-Cookie for the session name');
      assert.equal(await redis.exists(prefix + oldId), 0, 'the old session is gone');
      // before_response: stored before the reply; after_response: created before the reply, data just after.
      assert.equal(await redis.exists(prefix + newId), 1, 'the cookie names a session the store knows');

      // after_response: the data and the flash are written just after the reply.
      await eventually('the flash is stored', 2000, async () => (await redis.hexists(prefix + newId, 'f:notice')) === 1, 20);
      const page = await client.get('/page');
      assert.equal(page.body.id, newId, 'the next request continues the new session');
      assert.equal(page.body.notice, 'bye', 'the flash left after destroy() reached the next request');
      if (route === '/logout-then-start') assert.equal(page.body.name, 'New');
      else assert.equal(page.body.name, null, 'nothing of the old session carried over');
    });
  }
}

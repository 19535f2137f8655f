/**
 * A login whose session was ended meanwhile (a logout elsewhere, a revoke, "log out everywhere")
 * goes on in a new session: the reply shows only what the store has, never the data of the
 * ended session. Found by the history checker: a logout answered 503 had landed, the login then
 * answered with the old basket, and the next read showed it empty.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startKeepsakeApp, testConfig } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector } from '../support/session-helpers.js';

test("a login of a session ended meanwhile answers with what the store has: the ended session's data and user are gone", async (t) => {
  const redis = inspector();
  const config = testConfig();
  t.after(async () => {
    await dropPrefix(redis, config.session.key_prefix);
    redis.disconnect();
  });
  const { url } = await startKeepsakeApp(t, config, (app, sessions) => {
    app.put('/fill', async (request) => {
      const session = await sessions.start(request);
      session.data.put('basket', [{ sku: 'tea', qty: 1 }]);
      await sessions.regenerate(request, { userId: 'old-user' });
      return { ok: true };
    });
    // Loads the session, then it ends elsewhere (as a logout on another node would), then logs in.
    app.post('/login-after-logout', async (request) => {
      const session = await sessions.start(request);
      assert.ok(session.data.has('basket'), 'loaded before the logout');
      await redis.del(config.session.key_prefix + session.id);
      session.data.put('name', 'written by this request');
      await sessions.regenerate(request, { userId: (request.body as { user?: string }).user });
      return { user: session.meta.userId, data: session.data.toJSON() };
    });
    app.get('/read', async (request) => {
      const session = await sessions.start(request);
      return { user: session.meta.userId, data: session.data.toJSON() };
    });
  });

  for (const user of ['new-user', undefined]) {
    const browser = new Client(url);
    assert.equal((await browser.put('/fill', {})).status, 200);
    const login = await browser.post('/login-after-logout', user === undefined ? {} : { user });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const read = await browser.get('/read');
    assert.deepEqual(login.body, read.body, 'the login answered what the store holds');
    assert.deepEqual(read.body.data, { name: 'written by this request' }, "the ended session's basket is gone; this request's write is kept");
    assert.equal(read.body.user, user ?? null, user === undefined ? 'an id rotation of an ended session is not logged in as its old user' : 'the login names its user');
  }
});

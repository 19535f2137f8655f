/**
 * A login Redis runs only after its request answered 503 (the command sat in Redis's socket while
 * Redis was stopped) must not happen: the browser kept its old cookie, and a late rename would move
 * the session away from it. Found by the ten-minute history checker run (a `session-lost` after a
 * login answered 503 during a Redis restart). The rename carries a deadline; past it, nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startKeepsakeApp, testConfig } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';

test('a login that reaches Redis after its 503 changes nothing: the old cookie still names the whole session', async (t) => {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  let paused = false;
  const pause = (on: boolean) => {
    paused = on;
    server.process.child.kill(on ? 'SIGSTOP' : 'SIGCONT');
  };
  t.after(() => void (paused && pause(false)));
  const config = testConfig({ redis_connection_pool: { default: { port: String(server.port), command_timeout_ms: '300', acquire_timeout_ms: '300' } } });
  const { url, prefix } = await startKeepsakeApp(t, config, (app, sessions) => {
    app.put('/basket', async (request) => {
      const session = await sessions.start(request);
      session.data.put('basket', [{ sku: 'tea', qty: 2 }]);
      return { ok: true };
    });
    // The session is loaded, then Redis stops: the login's rename is the command that waits.
    app.post('/rotate-while-stopped', async (request) => {
      await sessions.start(request);
      pause(true);
      await sessions.regenerate(request);
      return { ok: true };
    });
    app.get('/basket', async (request) => ({ basket: (await sessions.start(request)).data.get('basket') ?? null }));
  });
  const browser = new Client(url);
  assert.equal((await browser.put('/basket', {})).status, 200);
  const before = browser.sessionId();

  const fcalls = async () => (await server.commandStats()).get('fcall') ?? 0;
  const fcallsBefore = await fcalls();
  const login = await browser.post('/rotate-while-stopped', {});
  assert.equal(login.status, 503, JSON.stringify(login.body));
  assert.equal(browser.sessionId(), before, 'no new cookie with the 503');
  pause(false);
  // Redis runs what waited in its socket: the login's FCALL, refused past its deadline.
  await eventually('the late login reached Redis and ran', 5000, async () => (await fcalls()) >= fcallsBefore + 1);

  const view = await browser.get('/basket');
  assert.equal(view.status, 200, JSON.stringify(view.body));
  assert.equal(browser.sessionId(), before, 'the old cookie still names a session (no new one was made)');
  assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 2 }], 'with its data');
  const keys = await server.client().keys(`${prefix}*`);
  assert.deepEqual(keys, [prefix + before], 'no session moved to an id nobody holds');
});

/**
 * A write that timed out is never reported as a success: the client gets 503 before Redis runs it
 * (the timed-out connection is retired, so a late reply is never taken for another request's
 * answer), and the requests after it read and write their own data.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { startApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';

/** A throwaway Redis, the demo app on it with a 300 ms command timeout, and a client of it. */
async function timingOutApp(t: TestContext) {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const app = await startApp({ redis_connection_pool: { default: { port: String(server.port), command_timeout_ms: '300', acquire_timeout_ms: '500' } } });
  t.after(() => app.close());
  return { server, app, alice: new Client(app.url) };
}

test('a write paused past command_timeout_ms answers 503, never 2xx; once Redis is back every request gets its own answer', async (t) => {
  const { server, app, alice } = await timingOutApp(t);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);

  // Writes stall, reads go on (the load, just refreshed, is a plain read): the write waits in
  // Redis past the timeout and runs when the pause ends.
  await server.process.command(['CLIENT', 'PAUSE', '1500', 'WRITE']);
  const began = performance.now();
  const late = await alice.put('/api/name', { name: 'Late' });
  assert.equal(late.status, 503, JSON.stringify(late.body));
  assert.equal(late.body.error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
  assert.ok(performance.now() - began < 1500, 'answered before Redis ran the write');

  // Once the pause ends the session reads 200: its value is the old one or the late one (a 503
  // means "not acknowledged, outcome unknown", docs/reliability.md), never an error or another's.
  await eventually('the session reads again after the pause', 5000, async () => (await alice.get('/api/session')).status === 200);
  assert.ok(['Alice', 'Late'].includes((await alice.get('/api/session')).body.name));
  // Every request after it gets its own answer: the late reply was not handed to anyone else.
  const bob = new Client(app.url);
  assert.equal((await bob.put('/api/name', { name: 'Bob' })).status, 200);
  assert.equal((await bob.get('/api/session')).body.name, 'Bob');
  assert.equal((await alice.put('/api/name', { name: 'Alice again' })).status, 200);
  assert.equal((await alice.get('/api/session')).body.name, 'Alice again');
});

test('an update() answered 503 after a timeout lands at most once: the add shows up once or not at all, never twice', async (t) => {
  const { server, alice } = await timingOutApp(t);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);

  await server.process.command(['CLIENT', 'PAUSE', '1000', 'WRITE']);
  const late = await alice.post('/api/basket/items', { sku: 'tea', qty: 1 });
  assert.equal(late.status, 503, JSON.stringify(late.body));
  // Past the pause, and past any re-send ioredis could make after reconnecting.
  await eventually('the session reads again after the pause', 5000, async () => (await alice.get('/api/basket')).status === 200);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const tea = ((await alice.get('/api/basket')).body.items as { sku: string; qty: number }[]).find((item) => item.sku === 'tea');
  assert.ok(tea?.qty === 1 || tea?.qty === 2, `the add answered 503 was applied at most once (qty ${tea?.qty})`);
  // A new add after it is applied once, on top of whatever the late one did.
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
  const after = ((await alice.get('/api/basket')).body.items as { sku: string; qty: number }[]).find((item) => item.sku === 'tea');
  assert.equal(after?.qty, tea.qty + 1);
});

/**
 * A logout published while a node's notice subscriber is away (its Redis link down and
 * reconnecting) reaches no one there: no notice will ever come. When the subscriber is back, the
 * node re-reads the sessions it holds sockets of; one found gone is ended at once (4401), not an
 * expiry sweep later (up to 30 s with the default lifespan). Found by the history checker.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { KeepsakeConfigInput } from '../../src/index.js';
import { startApp } from '../support/app-server.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { WsClient } from '../support/ws-client.js';

/** Node A talks to Redis straight, node B through a FaultProxy; both share one key prefix. */
async function twoNodes(t: TestContext) {
  const redis = await RedisServer.start();
  t.after(() => redis.stop());
  const proxy = await FaultProxy.start(redis.port);
  t.after(() => proxy.close());
  const pool = (port: number) => ({ default: { port: String(port) } }) as KeepsakeConfigInput['redis_connection_pool'];
  const a = await startApp({ redis_connection_pool: pool(redis.port) });
  t.after(() => a.close());
  const b = await startApp({ redis_connection_pool: pool(proxy.port), session: { key_prefix: a.prefix } });
  t.after(() => b.close());
  return { proxy, a, b };
}

test('a logout missed while the subscriber was away closes its sockets (4401) within a second or two of the link coming back', async (t) => {
  const { proxy, a, b } = await twoNodes(t);

  const browser = new Client(a.url);
  assert.equal((await browser.post('/api/login', { username: 'mia' })).status, 200);
  const socket = await WsClient.open(b.url.replace('http', 'ws') + '/ws', { cookie: browser.cookieHeader });
  t.after(() => socket.close());
  assert.equal((await socket.nextOfType('hello')).user, 'mia');

  // B's link to Redis goes down and stays down while the visitor logs out through A.
  proxy.refuseNew(true);
  proxy.cutAll();
  assert.equal((await browser.post('/api/logout', {})).status, 200);
  const back = Date.now();
  proxy.refuseNew(false);

  const closed = await Promise.race([socket.closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref())]);
  assert.notEqual(closed, null, 'the socket of the logged-out session is still open 5 s after the link came back');
  assert.equal(closed!.code, 4401);
  t.diagnostic(`closed ${Date.now() - back} ms after the link came back`);
});

test('two logins in a row while a node hears late: its socket, having missed the second rename, is closed (4401) rather than left on an id no notice reaches', async (t) => {
  const { proxy, a, b } = await twoNodes(t);

  const browser = new Client(a.url);
  assert.equal((await browser.put('/api/name', { name: 'Mia' })).status, 200);
  const socket = await WsClient.open(b.url.replace('http', 'ws') + '/ws', { cookie: browser.cookieHeader });
  t.after(() => socket.close());
  await socket.nextOfType('hello');

  // B hears everything 800 ms late. The first login's rename notice reaches it after the second
  // login already moved the session on: B subscribes to an id that no longer exists, and the
  // second rename, published on that id's channel before B listened, never comes.
  proxy.setDelay(800);
  assert.equal((await browser.post('/api/login', { username: 'mia' })).status, 200);
  assert.equal((await browser.post('/api/login', { username: 'mia' })).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  proxy.setDelay(0);
  assert.equal((await browser.post('/api/logout', {})).status, 200);

  const closed = await Promise.race([socket.closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref())]);
  assert.notEqual(closed, null, 'the socket of the logged-out session is still open 5 s after its logout');
  assert.equal(closed!.code, 4401);
});

// wait_replicas: a write is acknowledged only once the replicas have it (WAIT), against a
// throwaway master and replica. A replica that stops answering turns writes into 503s within
// wait_timeout_ms; once it is back, writes succeed again. One WAIT covers a turn's writes.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/index.js';
import { RedisPool } from '../../src/redis/redis-pool.js';
import { startApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer, parseInfo } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';

const WAIT_MS = 300;

/** A master with one replica in sync, both stopped after the test. */
async function replicated(t: TestContext): Promise<{ master: RedisServer; replica: RedisServer }> {
  const master = await RedisServer.start();
  t.after(() => master.stop());
  const replica = await RedisServer.start({ args: ['--replicaof', '127.0.0.1', String(master.port), '--repl-diskless-sync-delay', '0'] });
  t.after(async () => {
    replica.process.child.kill('SIGCONT'); // a stopped process would not hear the SIGTERM
    await replica.stop();
  });
  await eventually('the replica in sync', 10_000, async () => {
    const info = parseInfo(String(await replica.process.command(['INFO', 'replication'])));
    return info.get('master_link_status') === 'up';
  });
  return { master, replica };
}

function pool(port: number, extra: Record<string, string> = {}) {
  return { default: { port: String(port), acquire_timeout_ms: '500', command_timeout_ms: '1000', wait_replicas: '1', wait_timeout_ms: String(WAIT_MS), ...extra } };
}

test('wait_replicas = 1: an acknowledged write is on the replica; a replica that stops answering makes writes 503 within wait_timeout_ms; back, they succeed', async (t) => {
  const { master, replica } = await replicated(t);
  const app = await startApp({ redis_connection_pool: pool(master.port) });
  t.after(() => app.close());
  const alice = new Client(app.url);

  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  const key = app.prefix + alice.sessionId()!;
  // Read from the replica right after the reply: no waiting for replication to catch up.
  assert.equal(await replica.client().hexists(key, 'd:name'), 1, 'the replica had the write before the reply');
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
  assert.equal(await replica.client().hexists(key, 'd:basket'), 1);

  replica.process.child.kill('SIGSTOP');
  const began = Date.now();
  const refused = await alice.put('/api/name', { name: 'Mallory' });
  const took = Date.now() - began;
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
  assert.match(refused.body.error.message, /only 0 of 1 replicas confirmed it within 300 ms/);
  assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
  assert.ok(took >= WAIT_MS - 20 && took < 3000, `answered after ${took} ms`);
  // A new visitor's session is a write too: not acknowledged, no cookie.
  const newcomer = await new Client(app.url).get('/api/session');
  assert.equal(newcomer.status, 503);
  assert.equal(newcomer.setCookies.length, 0);
  // Reads need no replica.
  assert.equal((await alice.get('/api/basket')).status, 200);

  replica.process.child.kill('SIGCONT');
  await eventually('writes acknowledged again', 5000, async () => (await alice.put('/api/name', { name: 'Alice 2' })).status === 200);
  assert.equal((await alice.get('/api/session')).body.name, 'Alice 2');
  assert.equal(await replica.client().hexists(key, 'd:name'), 1);

  // A login: the renamed session and its user-index entry are both on the replica by the reply.
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  const loggedIn = alice.sessionId()!;
  assert.equal(await replica.client().exists(app.prefix + loggedIn), 1);
  assert.deepEqual(await replica.client().zrange(`${app.prefix}user:alice`, 0, '-1'), [loggedIn]);
});

test('the writes of one event-loop turn share one WAIT, and each gets its own reply', async (t) => {
  const { master } = await replicated(t);
  const config = validateConfig({ redis_connection_pool: pool(master.port) });
  const redisPool = new RedisPool('default', config.redis_connection_pool.default!);
  t.after(() => redisPool.close());
  await redisPool.runReplicated((client) => client.set('warm', '1')); // connected
  const before = (await master.commandStats()).get('wait') ?? 0;
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => redisPool.runReplicated((client) => client.incrby(`n${i}`, i + 1))));
  assert.deepEqual(replies, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(((await master.commandStats()).get('wait') ?? 0) - before, 1, 'twenty writes, one WAIT');
});

test('without wait_replicas no WAIT is sent', async (t) => {
  const { master } = await replicated(t);
  const app = await startApp({ redis_connection_pool: pool(master.port, { wait_replicas: '0' }) });
  t.after(() => app.close());
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  assert.equal((await master.commandStats()).get('wait'), undefined);
});

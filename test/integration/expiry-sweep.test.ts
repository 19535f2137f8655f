/**
 * The expiry sweep against the real Redis, driven one sweep at a time: a missing key ends its
 * session only when it is still missing, under the same id, a confirmation delay later; a rename
 * that arrives meanwhile (a login whose notice came after the EXISTS reply) keeps the sockets;
 * a subscriber that is down or a Redis that fails never ends anything.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createKeepsake, type Keepsake } from '../../src/index.js';
import { newSessionId } from '../../src/session/session-id.js';
import type { SessionSockets } from '../../src/websocket/connection-registry.js';
import { CONFIRM_AFTER_MS, ExpirySweep, sweepPeriodMs } from '../../src/websocket/expiry-sweep.js';
import { testConfig, testPrefix } from '../support/app-server.js';
import { RedisServer } from '../support/redis-server.js';
import { dropPrefix, inspector, sleep } from '../support/session-helpers.js';

const redis = inspector();
const opened: Keepsake[] = [];

/** A sweep over a fresh prefix, its subscriber up, and the sessions it ended. */
async function sweeper(port?: number, batchSize?: number) {
  const overrides = { session: { key_prefix: testPrefix('expiry-sweep') }, ...(port === undefined ? {} : { redis_connection_pool: { default: { port: String(port) } } }) };
  const keepsake = await createKeepsake(testConfig(overrides as never));
  opened.push(keepsake);
  const { sessionStore: store, connectionRegistry: registry, sessionNotices: notices } = keepsake.container.cradle;
  await notices.start();
  assert.ok(notices.subscribed);
  const ended: SessionSockets[] = [];
  const sweep = new ExpirySweep({ store, registry, notices, periodMs: 60_000, ended: (entry) => ended.push(entry), batchSize });
  const prefix = keepsake.config.session.key_prefix;
  /** Registers session `id` as having sockets here (the sweep needs no socket, only the entry). */
  const attach = (id: string) => registry.attach(id, 'anon-test', () => ({}) as never);
  return { sweep, ended, registry, notices, prefix, attach };
}

after(async () => {
  for (const keepsake of opened) {
    await dropPrefix(redis, keepsake.config.session.key_prefix).catch(() => undefined);
    await keepsake.close();
  }
  redis.disconnect();
});

test('the period is a quarter of cookie_lifespan, between 250 ms and 30 s', () => {
  assert.equal(sweepPeriodMs(1), 250);
  assert.equal(sweepPeriodMs(2), 500);
  assert.equal(sweepPeriodMs(60), 15_000);
  assert.equal(sweepPeriodMs(86_400), 30_000);
});

test('a key still there ends nothing; a missing one ends its session only once confirmed', async () => {
  const { sweep, ended, prefix, attach } = await sweeper();
  const alive = newSessionId();
  const gone = newSessionId();
  await redis.hset(prefix + alive, 'm:c', String(Date.now()));
  const aliveEntry = attach(alive);
  const goneEntry = attach(gone);
  await sweep.sweep();
  await sweep.sweep();
  assert.deepEqual(ended, [], 'not at the first miss, nor right after it');
  await sleep(CONFIRM_AFTER_MS + 50);
  await sweep.sweep();
  assert.deepEqual(ended, [goneEntry], 'still missing a confirmation delay later: ended');
  assert.ok(aliveEntry.live);
});

test('in batches smaller than the sessions with sockets, every session is still checked', async () => {
  const { sweep, ended, prefix, attach } = await sweeper(undefined, 2);
  const ids = Array.from({ length: 7 }, () => newSessionId());
  // Every other session exists: the missing ones fall in different batches, at either end.
  const alive = ids.filter((_, i) => i % 2 === 1);
  for (const id of alive) await redis.hset(prefix + id, 'm:c', String(Date.now()));
  const entries = ids.map((id) => attach(id));
  await sweep.sweep();
  await sleep(CONFIRM_AFTER_MS + 50);
  await sweep.sweep();
  assert.deepEqual(new Set(ended), new Set(entries.filter((_, i) => i % 2 === 0)), 'exactly the missing ones ended');
});

test('a rename that arrives after the miss keeps the session: the sweep follows the new id', async () => {
  const { sweep, ended, registry, prefix, attach } = await sweeper();
  const before = newSessionId();
  const afterLogin = newSessionId();
  await redis.hset(prefix + before, 'm:c', String(Date.now()));
  const entry = attach(before);
  // The login moves the key; its notice has not come yet when the sweep looks.
  await redis.rename(prefix + before, prefix + afterLogin);
  await sweep.sweep();
  registry.rename(entry, afterLogin); // the notice arrives
  await sleep(CONFIRM_AFTER_MS + 50);
  await sweep.sweep();
  await sweep.sweep();
  assert.deepEqual(ended, []);
  assert.equal(entry.id, afterLogin);
  // The new id is the one watched from now on.
  await redis.del(prefix + afterLogin);
  await sweep.sweep();
  await sleep(CONFIRM_AFTER_MS + 50);
  await sweep.sweep();
  assert.deepEqual(ended, [entry]);
});

test('while the subscriber is down a missing key ends nothing (a rename notice may be lost)', async () => {
  const { sweep, ended, notices, attach } = await sweeper();
  attach(newSessionId());
  await sweep.sweep();
  await notices.close();
  await sleep(CONFIRM_AFTER_MS + 50);
  await sweep.sweep();
  assert.deepEqual(ended, []);
});

test('a Redis that fails during a sweep ends nothing, and the sweep does not throw', async () => {
  const server = await RedisServer.start();
  try {
    const { sweep, ended, attach } = await sweeper(server.port);
    attach(newSessionId());
    await sweep.sweep(); // missing: a first miss
    await server.stop();
    await sleep(CONFIRM_AFTER_MS + 50);
    await sweep.sweep(); // fails: skipped
    assert.deepEqual(ended, []);
  } finally {
    await server.stop();
  }
});

/**
 * The per-user index against the real Redis: every key has a TTL that outlives its sessions,
 * ended sessions are pruned, and nothing else is touched.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createKeepsake, type Keepsake } from '../../src/index.js';
import { newSessionId } from '../../src/session/session-id.js';
import { testConfig, testPrefix } from '../support/app-server.js';
import { dropPrefix, eventually, inspector } from '../support/session-helpers.js';

const redis = inspector();
const opened: Keepsake[] = [];

async function index(session: Record<string, unknown>, pool: Record<string, unknown> = {}) {
  const keepsake = await createKeepsake(testConfig({ session: { key_prefix: testPrefix('user-index'), ...session } as never, redis_connection_pool: { default: pool } as never }));
  opened.push(keepsake);
  return { users: keepsake.container.resolve('userIndex'), prefix: keepsake.config.session.key_prefix };
}

after(async () => {
  for (const keepsake of opened) {
    await dropPrefix(redis, keepsake.config.session.key_prefix);
    await keepsake.close();
  }
  redis.disconnect();
});

test('with absolute_lifespan the index expires at its latest session end, and a later session only lengthens it', async () => {
  const { users, prefix } = await index({ absolute_lifespan: 600, cookie_lifespan: 60 });
  const now = Date.now();
  await users.add('ann', newSessionId(), now - 100_000); // ends in ~500 s
  const first = await redis.pexpiretime(`${prefix}user:ann`);
  assert.ok(Math.abs(first - (now - 100_000 + 600_000)) < 5, `expires at the absolute end (${first - now} ms from now)`);
  await users.add('ann', newSessionId(), now); // ends in 600 s
  const second = await redis.pexpiretime(`${prefix}user:ann`);
  assert.ok(Math.abs(second - (now + 600_000)) < 5);
  await users.add('ann', newSessionId(), now - 300_000); // an older session never shortens it
  assert.equal(await redis.pexpiretime(`${prefix}user:ann`), second);
});

test('with absolute_lifespan = 0 the index lives cookie_lifespan (plus headroom) and touch() pushes it forward', async () => {
  const { users, prefix } = await index({ absolute_lifespan: 0, cookie_lifespan: 60 });
  await users.add('bo', newSessionId(), Date.now());
  const key = `${prefix}user:bo`;
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 60_000 && ttl <= 70_000, `ttl ${ttl}`);
  await redis.pexpire(key, 30_000);
  users.touch('bo'); // sends its PEXPIRE without waiting for it: poll for the effect
  await eventually('touch pushed the index TTL forward', 2000, async () => (await redis.pttl(key)) > 60_000, 10);
  assert.equal(await redis.zrange(key, 0, '-1', 'WITHSCORES').then((reply) => reply[1]), 'inf', 'rolling sessions are never pruned by score');
});

test('list returns live sessions only and prunes the ids of sessions that ended; past their absolute end they go too', async () => {
  const { users, prefix } = await index({ absolute_lifespan: 600 }, { acquire_timeout_ms: 50, command_timeout_ms: 100 });
  const live = newSessionId();
  const idle = newSessionId();
  const old = newSessionId();
  await redis.hset(prefix + live, 'm:c', String(Date.now()));
  await redis.pexpire(prefix + live, 60_000);
  await redis.hset(prefix + old, 'm:c', String(Date.now() - 700_000));
  await redis.pexpire(prefix + old, 60_000);
  await users.add('cy', live, Date.now());
  await users.add('cy', idle, Date.now()); // its session expired (never stored here)
  await redis.zadd(`${prefix}user:cy`, Date.now() - 100_000, old); // past its absolute end
  assert.deepEqual(await users.list('cy'), [live]);
  // A missing session may be a login in flight: its id goes once it has been missing past the
  // grace (4 × (acquire + command timeouts) + 4 s here: 4.6 s).
  assert.deepEqual(await redis.zrange(`${prefix}user:cy`, 0, '-1'), [live, idle], 'the id past its absolute end is pruned at once, the missing one not yet');
  await eventually('the missing id is pruned after the grace', 8000, async () => {
    await users.list('cy');
    return (await redis.zcard(`${prefix}user:cy`)) === 1;
  }, 500);
  assert.deepEqual(await redis.zrange(`${prefix}user:cy`, 0, '-1'), [live], 'dead ids pruned from Redis too');
  assert.equal(await redis.exists(prefix + old), 1, 'listing never deletes a session');
  await users.remove('cy', live);
  assert.equal(await redis.exists(`${prefix}user:cy`), 0, 'an empty index is no key at all');
});

test('a login in flight (index entry written, session not moved yet) is not pruned by a listing: "log out everywhere" still ends it', async () => {
  const { users, prefix } = await index({ absolute_lifespan: 600 });
  const keepsake = opened.at(-1)!;
  const id = newSessionId();
  await users.add('dee', id, Date.now()); // regenerate's first step
  assert.deepEqual(await users.list('dee'), [], 'not listed while its session is not there');
  // The login's commit lands: the session now exists under the id.
  await redis.hset(prefix + id, 'm:c', String(Date.now()), 'm:u', 'dee');
  await redis.pexpire(prefix + id, 60_000);
  assert.equal(await keepsake.sessionManager.destroyUser('dee'), 1, 'destroyUser found the session');
  assert.equal(await redis.exists(prefix + id), 0);
});

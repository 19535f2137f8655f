/**
 * Idle timeout: the cookie's Max-Age follows activity as the Redis TTL does. The cookie is
 * re-sent (same id, Max-Age = cookie_lifespan) once a tenth of the lifespan has passed since it
 * was last sent, counted from that moment (session metadata `m:k`), not from creation.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startApp, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector, sessionCookie, sleep } from '../support/session-helpers.js';

const redis = inspector();
const prefixes: string[] = [];

after(async () => {
  for (const prefix of prefixes) await dropPrefix(redis, prefix);
  redis.disconnect();
});

test('a user active early in the lifespan gets the cookie re-sent, so it expires with the Redis key, not lifespan after creation', async (t) => {
  const LIFESPAN_S = 4;
  const { url, prefix, close } = await startApp({ session: { key_prefix: testPrefix('cookie-activity'), cookie_lifespan: LIFESPAN_S, absolute_lifespan: 0 } as never });
  prefixes.push(prefix);
  t.after(close);
  const client = new Client(url);
  const created = await client.put('/api/name', { name: 'Ida' });
  const id = client.sessionId()!;
  assert.equal(sessionCookie(created.setCookies)?.attributes.get('max-age'), String(LIFESPAN_S));
  const key = prefix + id;
  const dataBefore = await redis.hgetBuffer(key, 'd:name');

  // A quarter of the lifespan later (before half of it, where the cookie used to be re-sent):
  // without a new cookie, the browser would drop it at 4 s while Redis keeps the session to 5 s.
  await sleep(1000);
  const active = await client.get('/api/session');
  assert.equal(active.body.name, 'Ida');
  const resent = sessionCookie(active.setCookies);
  assert.ok(resent !== undefined, 'the cookie is re-sent: its Max-Age follows the activity');
  assert.equal(resent.id, id, 'same id');
  assert.equal(resent.attributes.get('max-age'), String(LIFESPAN_S));
  const ttl = await redis.pttl(key);
  assert.ok(ttl > (LIFESPAN_S - 0.5) * 1000, `the Redis TTL was refreshed too (${ttl} ms)`);

  // Re-sending is recorded in metadata only: the data is untouched.
  const sentAt = Number(await redis.hget(key, 'm:k'));
  assert.ok(sentAt > Date.now() - 2000 && sentAt <= Date.now(), `m:k holds when the cookie was last sent (${sentAt})`);
  assert.deepEqual(await redis.hgetBuffer(key, 'd:name'), dataBefore, 'no data written');

  // Right after, the cookie is not sent again: not on every request.
  const next = await client.get('/api/session');
  assert.equal(sessionCookie(next.setCookies), undefined, 'not re-sent within a tenth of the lifespan of the last send');
  assert.equal(next.body.name, 'Ida');
});

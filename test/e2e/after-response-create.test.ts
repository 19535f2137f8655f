/**
 * `persist = after_response`: the data is written after the reply, but a new session is created
 * in the store (metadata only) before its cookie leaves, so a next request fired at once finds
 * it instead of starting another session (which would orphan the first and its data).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startKeepsakeApp, testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector, sessionCookie } from '../support/session-helpers.js';

const redis = inspector();
const prefix = testPrefix('after-response');

after(async () => {
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

test('after_response: a request fired right after the first reply continues the new session; the data arrives just after', async (t) => {
  // Other after-response work of the app (logging, metrics) that runs before keepsake's write:
  // held here until the second request is answered, so the race is certain, not a matter of luck.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  t.after(async () => release());
  const config = testConfig({ session: { key_prefix: prefix, persist: 'after_response' } as never });
  const { url } = await startKeepsakeApp(
    t,
    config,
    (app, sessions) => {
      app.post('/save', async (request) => {
        const session = await sessions.start(request);
        session.data.put('name', 'Quick');
        return { id: session.id };
      });
      app.get('/look', async (request) => {
        const session = await sessions.start(request);
        return { id: session.id, fresh: session.fresh };
      });
    },
    (app) =>
      app.addHook('onResponse', async (request) => {
        if (request.url === '/save') await Promise.race([released, new Promise((resolve) => setTimeout(resolve, 3000))]);
      }),
  );
  const client = new Client(url);

  const first = await client.post('/save');
  const id = first.body.id as string;
  assert.equal(sessionCookie(first.setCookies)?.id, id);
  assert.equal(await redis.exists(prefix + id), 1, 'the session exists when its cookie arrives');

  const second = await client.get('/look');
  release();
  assert.equal(second.body.id, id, 'the quick next request continues the same session');
  assert.equal(second.body.fresh, false);
  assert.equal(sessionCookie(second.setCookies), undefined, 'no new cookie: nothing orphaned');

  await eventually('the data is written after the response', 3000, async () => (await redis.hexists(prefix + id, 'd:name')) === 1, 20);
  const ttl = await redis.pttl(prefix + id);
  assert.ok(ttl > 86000 * 1000, `a session with data lives cookie_lifespan (${ttl} ms)`);
});

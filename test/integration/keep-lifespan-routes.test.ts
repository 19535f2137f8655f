/**
 * Routes that must not extend a session's life (a page polling every few seconds would keep an
 * abandoned session alive forever): `config: { keepsake: { extendSession: false } }` reads the
 * session without refreshing its TTL or re-sending the cookie; other routes still extend it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { createKeepsake, type Keepsake } from '../../src/index.js';
import { testPrefix } from '../support/app-server.js';
import { dropPrefix, inspector, sessionCookie } from '../support/session-helpers.js';

const prefix = testPrefix('lifespan');
const redis = inspector();
let app: FastifyInstance;
let keepsake: Keepsake;

before(async () => {
  keepsake = await createKeepsake({ session: { key_prefix: prefix } });
  app = Fastify();
  await app.register(keepsake.plugin);
  app.get('/visit', async (request) => ({ visits: await (await request.startSession()).data.update('visits' as never, ((n: number = 0) => n + 1) as never) }));
  app.put('/big', async (request) => {
    (await request.startSession()).data.put('big' as never, 'x'.repeat(200_000) as never);
    return { ok: true };
  });
  app.get('/poll', { config: { keepsake: { extendSession: false } } }, async (request) => ({ visits: (await request.startSession()).data.get('visits' as never) ?? null }));
  app.get('/peek', { config: { keepsake: { extendSession: false } } }, async (request) => ({ found: (await request.restoreSession()) !== null }));
});

after(async () => {
  await app.close();
  await keepsake.close();
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

test('a polling route reads the session without extending its life; a normal route extends it', async () => {
  const first = await app.inject('/visit');
  const setCookies = ([] as string[]).concat(first.headers['set-cookie'] as string | string[]);
  const key = `${prefix}${sessionCookie(setCookies)!.id}`;
  const header = setCookies[0]!.split(';')[0]!;
  await redis.pexpire(key, 60_000); // as if the visitor had left a while ago

  const poll = await app.inject({ url: '/poll', headers: { cookie: header } });
  assert.deepEqual(poll.json(), { visits: 1 });
  assert.equal(poll.headers['set-cookie'], undefined, 'no cookie re-sent (its Max-Age would extend it in the browser)');
  const peek = await app.inject({ url: '/peek', headers: { cookie: header } });
  assert.deepEqual(peek.json(), { found: true });
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 0 && ttl <= 60_000, `the polls left the TTL alone (got ${ttl} ms)`);

  await app.inject({ url: '/visit', headers: { cookie: header } });
  assert.ok((await redis.pttl(key)) > 86_000_000, 'a normal route extends it to cookie_lifespan');
});

test('a large session (read through the version check of its cached copy) is not extended by a polling route either', async () => {
  const first = await app.inject({ method: 'PUT', url: '/big' });
  const setCookies = ([] as string[]).concat(first.headers['set-cookie'] as string | string[]);
  const key = `${prefix}${sessionCookie(setCookies)!.id}`;
  const header = setCookies[0]!.split(';')[0]!;
  await app.inject({ url: '/visit', headers: { cookie: header } }); // this node keeps a copy now
  await redis.pexpire(key, 60_000);
  for (let i = 0; i < 2; i++) assert.equal((await app.inject({ url: '/poll', headers: { cookie: header } })).statusCode, 200);
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 0 && ttl <= 60_000, `the polls left the TTL alone (got ${ttl} ms)`);
  await app.inject({ url: '/visit', headers: { cookie: header } });
  assert.ok((await redis.pttl(key)) > 86_000_000, 'a normal route extends it');
});

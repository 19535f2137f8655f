/**
 * Flash values over real HTTP: set by one request, readable by the next one only.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { createKeepsake } from '../../src/index.js';
import { testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector } from '../support/session-helpers.js';

const redis = inspector();
const prefix = testPrefix('flash');

after(async () => {
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

test('a flashed value is readable on the next request only, then gone from Redis', async (t) => {
  const keepsake = await createKeepsake(testConfig({ session: { key_prefix: prefix } as never }));
  const app = Fastify();
  await app.register(keepsake.plugin);
  const sessions = keepsake.sessionManager;
  app.post('/save', async (request) => {
    const session = await sessions.start(request);
    session.data.put('name', 'saved');
    session.flash('notice', { text: 'Saved', level: 'info' });
    return { notice: session.flashed('notice') ?? null };
  });
  app.get('/page', async (request) => {
    const session = await sessions.start(request);
    return { notice: session.flashed('notice') ?? null };
  });
  app.get('/elsewhere', async (request) => {
    await sessions.start(request); // starts the session, never looks at the flash
    return {};
  });
  app.get('/health', async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await app.close();
    await keepsake.close();
  });
  const client = new Client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);

  assert.deepEqual((await client.post('/save')).body, { notice: null }, 'not readable by the request that set it');
  const key = prefix + client.sessionId()!;
  assert.equal(await redis.hexists(key, 'f:notice'), 1, 'stored as an f: field');
  assert.deepEqual((await client.get('/page')).body, { notice: { text: 'Saved', level: 'info' } });
  assert.equal(await redis.hexists(key, 'f:notice'), 0, 'deleted by the request that received it');
  assert.deepEqual((await client.get('/page')).body, { notice: null }, 'gone on the request after');
  assert.equal(await redis.hget(key, 'd:name') !== null, true, 'session data is untouched');

  // A request that starts the session without reading still consumes it: next request only.
  await client.post('/save');
  await client.get('/health'); // never starts the session: does not count
  await client.get('/elsewhere');
  assert.deepEqual((await client.get('/page')).body, { notice: null });
  assert.equal(await redis.hexists(key, 'f:notice'), 0);
});

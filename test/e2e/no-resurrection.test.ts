/**
 * A late write must not resurrect a destroyed session (DESIGN.md, "Measured": the persist's Redis
 * function writes only if the session still exists): a request that started the session before
 * another request logged it out gets 409 ERR_SESSION_GONE, and no key comes back.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { createKeepsakeContainer, registerErrorReplies, sessionPlugin } from '../../src/index.js';
import { testConfig } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector } from '../support/session-helpers.js';

const redis = inspector();
const config = testConfig();
const container = createKeepsakeContainer(config);
const { sessionManager } = container.cradle;
const app = Fastify();
/** A request parked at `/late/*` until the test lets it go on, and how many got there. */
let release: () => void = () => undefined;
let parkedCount = 0;

after(async () => {
  await app.close();
  await dropPrefix(redis, config.session.key_prefix);
  redis.disconnect();
});

test('a write of a request that outlived its session answers 409 ERR_SESSION_GONE and stores nothing', async () => {
  app.addHook('onClose', async () => container.dispose());
  registerErrorReplies(app);
  await app.register(sessionPlugin, { sessionManager });
  app.put('/name', async (request) => {
    (await sessionManager.start(request)).data.put('name' as never, 'Alice' as never);
    return { ok: true };
  });
  app.post('/logout', async (request) => {
    await sessionManager.destroy(request);
    return { ok: true };
  });
  const parked = () =>
    new Promise<void>((resolve) => {
      release = resolve;
      parkedCount++;
    });
  app.put('/late/put', async (request) => {
    const session = await sessionManager.start(request);
    await parked();
    session.data.put('name' as never, 'Zombie' as never);
    return { ok: true }; // the persist runs before the reply leaves
  });
  app.put('/late/update', async (request) => {
    const session = await sessionManager.start(request);
    await parked();
    return { count: await session.data.update('count' as never, ((count: number | undefined) => (count ?? 0) + 1) as never) };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  for (const route of ['/late/put', '/late/update']) {
    const client = new Client(url);
    assert.equal((await client.put('/name')).status, 200);
    const key = `${config.session.key_prefix}${client.sessionId()}`;
    assert.equal(await redis.exists(key), 1);
    const parkedBefore = parkedCount;
    const late = client.put(route);
    // Once the late request holds its loaded session, log out.
    await eventually(`${route} parked with its session`, 5000, async () => parkedCount > parkedBefore, 5);
    const logoutClient = new Client(url);
    logoutClient.cookies = new Map(client.cookies);
    assert.equal((await logoutClient.post('/logout')).status, 200);
    assert.equal(await redis.exists(key), 0, 'logged out');
    release();
    const reply = await late;
    assert.equal(reply.status, 409, `${route}: ${JSON.stringify(reply.body)}`);
    assert.equal(reply.body.error.code, 'ERR_SESSION_GONE');
    assert.equal(await redis.exists(key), 0, `${route}: the destroyed session was not written again`);
    assert.deepEqual(await redis.keys(`${config.session.key_prefix}*`).then((keys) => keys.filter((k) => k.endsWith(client.sessionId()!))), []);
  }
});

/**
 * keepsake in an app that already has its own fastify setup: @fastify/websocket registered by the
 * app (no duplicate-decorator error), `request.startSession()` and `fastify.sessionManager`.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { createKeepsake, type Connection, type Keepsake, type WebSocketController } from '../../src/index.js';
import { testPrefix } from '../support/app-server.js';
import { dropPrefix, inspector } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

const prefix = testPrefix('idioms');
const redis = inspector();
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

class NameSocket implements WebSocketController {
  onOpen(conn: Connection) {
    conn.send({ name: conn.session.data.get('name' as never) ?? null });
  }
}

async function serve(setup: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance; keepsake: Keepsake; url: string }> {
  const keepsake = await createKeepsake({ session: { key_prefix: prefix } });
  const app = Fastify();
  closers.push(() => keepsake.close(), () => app.close());
  await setup(app);
  await app.register(keepsake.plugin);
  await app.register(keepsake.websocket, { routes: { '/ws': new NameSocket() } });
  app.put<{ Body: { name: string } }>('/name', async (request) => {
    const session = await request.startSession();
    session.data.put('name' as never, request.body.name as never);
    return { name: request.body.name };
  });
  app.get('/name', async function (request) {
    const session = await this.sessionManager.restore(request);
    return { name: session?.data.get('name' as never) ?? null, same: this.sessionManager === keepsake.sessionManager };
  });
  app.get('/restore', async (request) => ({ session: (await request.restoreSession()) !== null }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, keepsake, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

async function exercise(url: string): Promise<void> {
  const none = await fetch(`${url}/restore`);
  assert.deepEqual([await none.json(), none.headers.get('set-cookie')], [{ session: false }, null], 'restoreSession() never creates one');
  const put = await fetch(`${url}/name`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Ada' }) });
  assert.equal(put.status, 200);
  const cookie = put.headers.getSetCookie()[0]!.split(';')[0]!;
  const read = await fetch(`${url}/name`, { headers: { cookie } });
  assert.deepEqual(await read.json(), { name: 'Ada', same: true }, 'fastify.sessionManager is the singleton and reads what startSession() stored');
  const socket = await WsClient.open(`${url}/ws`, { cookie });
  assert.deepEqual(await socket.next(), { name: 'Ada' });
  socket.socket.close();
}

test('an app that registered @fastify/websocket itself adds keepsake: no duplicate decorator, sessions on HTTP and WebSocket', async () => {
  const { url } = await serve(async (app) => {
    await app.register(fastifyWebsocket);
  });
  await exercise(url);
});

test('an app without @fastify/websocket gets it registered by keepsake', async () => {
  const { app, url } = await serve(async () => undefined);
  assert.ok(app.hasDecorator('websocketServer'));
  await exercise(url);
});

test('keepsake.websocket without keepsake.plugin first is refused by name (fastify-plugin metadata)', async () => {
  const keepsake = await createKeepsake({ session: { key_prefix: prefix } });
  closers.push(() => keepsake.close());
  const app = Fastify();
  closers.push(() => app.close());
  await assert.rejects(async () => {
    await app.register(keepsake.websocket);
    await app.ready();
  }, /'sessionManager' required by 'keepsake-websocket'/);
});

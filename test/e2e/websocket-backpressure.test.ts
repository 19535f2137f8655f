/**
 * Bounded sockets: a client that stops reading while its session keeps changing is closed with
 * 1013 once `ws_max_buffered_bytes` wait to be sent (the node's memory stays bounded), and a
 * session cannot open more than `ws_max_sockets_per_session` sockets on a node (1008).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Connection, WebSocketController } from '../../src/index.js';
import { testConfig } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';
import { startWsNode, type WsNode } from '../support/ws-node.js';

const MESSAGE_BYTES = 256 * 1024;
const MAX_BUFFERED = 1024 * 1024;

/** Sends a large message on every change: what a dashboard pushing full state would do. */
class BigPush implements WebSocketController {
  onOpen(conn: Connection) {
    conn.send({ type: 'hello' });
  }
  onSessionChange(conn: Connection) {
    conn.send({ type: 'session', name: conn.session.data.get('name' as never), padding: 'x'.repeat(MESSAGE_BYTES) });
  }
}

const redis = inspector();
const apps: { app: FastifyInstance; prefix: string }[] = [];
const sockets: WsClient[] = [];

after(async () => {
  for (const socket of sockets) socket.socket.terminate();
  for (const { app, prefix } of apps) {
    await app.close();
    await dropPrefix(redis, prefix);
  }
  redis.disconnect();
});

async function startNode(server: Record<string, string>): Promise<WsNode> {
  const config = testConfig({ server });
  const node = await startWsNode(config, new BigPush());
  apps.push({ app: node.app, prefix: config.session.key_prefix });
  return node;
}

test('a client that stops reading is closed with 1013 before more than ws_max_buffered_bytes wait for it', async () => {
  const { url, container } = await startNode({ ws_max_buffered_bytes: String(MAX_BUFFERED) });
  const client = new Client(url);
  await client.post('/name', { name: 'change 0' });
  const socket = await WsClient.open(`${url}/live`, { cookie: client.cookieHeader });
  sockets.push(socket);
  await socket.nextOfType('hello', 5000);
  const [server] = container.cradle.connectionRegistry.all();
  assert.ok(server !== undefined);

  // The client stops reading: the kernel buffers fill, then the server's.
  (socket.socket as unknown as { _socket: Socket })._socket.pause();
  let most = 0;
  let changes = 0;
  for (; changes < 400 && server.open; changes++) {
    assert.equal((await client.post('/name', { name: `change ${changes + 1}` })).status, 200);
    // Each change is one notice and one re-read: wait until the node has handled it (or closed).
    const sent = server.socket.bufferedAmount;
    most = Math.max(most, sent);
    assert.ok(sent <= MAX_BUFFERED + 2 * MESSAGE_BYTES, `${sent} bytes wait to be sent after ${changes + 1} changes; the bound is ${MAX_BUFFERED}`);
  }
  await eventually('the server closes the slow socket', 5000, async () => !server.open);
  assert.ok(changes < 400, `still open after ${changes} changes of ${MESSAGE_BYTES} bytes each`);

  // Once the client reads again it gets what was buffered, then the close frame.
  (socket.socket as unknown as { _socket: Socket })._socket.resume();
  const closed = await socket.closedWithin(10_000);
  assert.equal(closed.code, 1013);
  assert.match(closed.reason, /too slow/);
  // The node still serves.
  assert.equal((await client.post('/name', { name: 'after' })).status, 200);
});

test('one socket more than ws_max_sockets_per_session is closed with 1008; the others stay open', async () => {
  const { url } = await startNode({ ws_max_sockets_per_session: '2' });
  const client = new Client(url);
  await client.post('/name', { name: 'tabs' });
  const open = async () => {
    const socket = await WsClient.open(`${url}/live`, { cookie: client.cookieHeader });
    sockets.push(socket);
    return socket;
  };
  const [first, second] = [await open(), await open()];
  await first.nextOfType('hello', 5000);
  await second.nextOfType('hello', 5000);
  const third = await open();
  const refused = await third.closedWithin(5000);
  assert.equal(refused.code, 1008);
  assert.match(refused.reason, /too many sockets/);
  assert.equal(third.received.length, 0, 'the controller never saw the refused socket');
  // Another visitor is not affected, and the session's first two sockets still hear changes.
  const other = await WsClient.open(`${url}/live`, { cookie: (await (async () => { const c = new Client(url); await c.post('/name', { name: 'x' }); return c; })()).cookieHeader });
  sockets.push(other);
  await other.nextOfType('hello', 5000);
  await client.post('/name', { name: 'tabs 2' });
  await first.next((message) => message?.name === 'tabs 2', 5000);
  await second.next((message) => message?.name === 'tabs 2', 5000);
  // A closed socket frees its place.
  await first.close();
  const fourth = await open();
  await fourth.nextOfType('hello', 5000);
});

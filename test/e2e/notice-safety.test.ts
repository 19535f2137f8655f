/**
 * No node can be taken down by another's message: an invalid closeUser is refused where it is
 * called, and garbage or malicious notices published raw on keepsake's channels are ignored by
 * every node, which keeps serving HTTP and keeping its sockets current.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Connection, WebSocketController } from '../../src/index.js';
import { testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';
import { startWsNode, type WsNode } from '../support/ws-node.js';

/** Shows the session's name on open and on every change. */
class NameSocket implements WebSocketController {
  onOpen(conn: Connection) {
    conn.send({ type: 'hello', user: conn.user });
  }
  onSessionChange(conn: Connection) {
    conn.send({ type: 'session', name: conn.session.data.get('name' as never) ?? null });
  }
}

const prefix = testPrefix('notice-safety');
const nodes: WsNode[] = [];
const sockets: WsClient[] = [];
let redis: Redis;
const uncaught: unknown[] = [];
const record = (error: unknown) => void uncaught.push(error);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function startNode(): Promise<WsNode> {
  const node = await startWsNode(testConfig({ session: { key_prefix: prefix } }), new NameSocket(), quiet);
  nodes.push(node);
  return node;
}

before(() => {
  // A throw inside a pub/sub listener surfaces here (the process would exit outside a test runner).
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 });
});

after(async () => {
  process.off('uncaughtException', record);
  process.off('unhandledRejection', record);
  await Promise.all(sockets.map((socket) => socket.close()));
  await Promise.all(nodes.map((node) => node.app.close()));
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

test('garbage notices and an invalid closeUser leave every node serving and its sockets current', async () => {
  const [a, b] = [await startNode(), await startNode()];
  const client = new Client(a.url);
  assert.equal((await client.post('/login', { username: 'victim' })).status, 200);
  // The user's socket is on B only: A has nothing to close locally and publishes straight away.
  const socket = await WsClient.open(`${b.url}/live`, { cookie: client.cookieHeader });
  sockets.push(socket);
  assert.equal((await socket.nextOfType('hello', 5000)).user, 'victim');
  const id = decodeURIComponent(client.cookies.get('dmsession')!).split('.')[0]!;

  const registry = a.container.cradle.connectionRegistry;
  for (const [code, reason] of [[99, 'x'], [1005, 'x'], [4401.5, 'x'], [4000, 'x'.repeat(124)], [4000, '€'.repeat(42)]] as const) {
    await assert.rejects(registry.closeUser('victim', code, reason), (error: { code?: string; message: string }) => {
      assert.equal(error.code, 'ERR_WS_CLOSE_INVALID');
      assert.match(error.message, code === 4000 ? /\d+ UTF-8 bytes/ : new RegExp(String(code)));
      return true;
    });
  }

  const events = `${prefix}events`;
  const users = `${prefix}users`;
  const garbage: [string, string][] = [
    [events, ''],
    [events, 'c'],
    [events, 'x:y:z'],
    [events, `r:${id}:not-a-session-id`],
    [events, `r:${id}`],
    [events, 'd:../../etc'],
    [users, 'not json'],
    [users, 'null'],
    [users, '[1,2]'],
    [users, '{"k":"c"}'],
    [users, JSON.stringify({ k: 'c', n: 'mallory', u: 'victim', c: 99, r: '' })],
    [users, JSON.stringify({ k: 'c', n: 'mallory', u: 'victim', c: 4000, r: 'x'.repeat(500) })],
    [users, JSON.stringify({ k: 'c', n: 'mallory', u: 'victim', c: 1e309, r: '' })],
    [users, JSON.stringify({ k: 's', n: 'mallory', u: 'victim', t: 42 })],
  ];
  for (const [channel, message] of garbage) await redis.publish(channel, message);
  // Redis delivers in publish order: once this marker reached B's socket, every notice above did.
  await redis.publish(users, JSON.stringify({ k: 's', n: 'marker', u: 'victim', t: '{"type":"marker"}' }));
  await socket.nextOfType('marker', 5000);

  assert.deepEqual(uncaught, []);
  assert.ok(socket.open, 'the socket survived the garbage (and was not moved to a bogus id)');
  // Both nodes still serve, and B still follows the session's changes.
  assert.equal((await client.post('/name', { name: 'still here' })).status, 200);
  assert.equal((await socket.next((message) => message?.type === 'session' && message.name === 'still here', 5000)).name, 'still here');
  assert.equal((await new Client(b.url).post('/name', { name: 'b serves' })).status, 200);
  // A valid closeUser still reaches the socket on B.
  assert.equal(await registry.closeUser('victim', 4000, 'bye'), 0);
  assert.equal((await socket.closedWithin(5000)).code, 4000);
  assert.deepEqual(uncaught, []);
});

/**
 * WebSocket routes as a library user writes them (public API only): a controller's hooks, the
 * connection registry of a node, and reaching every socket of a user on every node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Connection, WebSocketController } from '../../src/index.js';
import { testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { WsClient } from '../support/ws-client.js';
import { startWsNode, type WsNode } from '../support/ws-node.js';

/** Records every hook call; `echo` answers each message, `boom` fails. */
class Recorder implements WebSocketController {
  readonly calls: string[] = [];
  async onOpen(conn: Connection) {
    this.calls.push(`open ${conn.user}`);
    await new Promise((resolve) => setTimeout(resolve, 20)); // async hooks of a socket run in order
    conn.send({ type: 'hello', user: conn.user, name: conn.session.data.get('name') ?? null });
  }
  async onMessage(conn: Connection, message: string | Buffer) {
    this.calls.push(`message ${String(message)}`);
    if (message === 'boom') throw new Error('boom');
    conn.send({ type: 'echo', text: String(message) });
  }
  onSessionChange(conn: Connection) {
    this.calls.push(`change ${conn.user}`);
    conn.send({ type: 'session', user: conn.user, name: conn.session.data.get('name') ?? null });
  }
  onError(conn: Connection, error: Error) {
    this.calls.push(`error ${error.message}`);
    conn.send({ type: 'error', message: error.message });
  }
  onClose(conn: Connection, code: number) {
    this.calls.push(`close ${code}`);
  }
}

interface Node extends WsNode {
  controller: Recorder;
}

let redis: RedisServer;
const nodes: Node[] = [];
const sockets: WsClient[] = [];

async function startNode(prefix: string, controller: WebSocketController = new Recorder()): Promise<Node> {
  const config = testConfig({ session: { key_prefix: prefix }, redis_connection_pool: { default: { port: String(redis.port) } } });
  const node = { ...(await startWsNode(config, controller)), controller: controller as Recorder };
  nodes.push(node);
  return node;
}

async function openWs(node: Node, cookie?: string): Promise<WsClient> {
  const socket = await WsClient.open(`${node.url}/live`, { cookie });
  sockets.push(socket);
  await socket.nextOfType('hello');
  return socket;
}

async function loggedIn(node: Node, username: string): Promise<Client> {
  const client = new Client(node.url);
  assert.equal((await client.post('/login', { username })).status, 200);
  return client;
}

before(async () => {
  redis = await RedisServer.start();
});

after(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await Promise.all(nodes.map((node) => node.app.close()));
  await redis?.stop();
});

describe('a controller written against the public API', () => {
  test('hooks run in order per socket; a failing hook goes to onError and the socket stays open', async () => {
    const node = await startNode(testPrefix('ws-hooks'));
    const client = await loggedIn(node, 'carol');
    const socket = await openWs(node, client.cookieHeader);
    socket.send('one');
    socket.send('boom');
    socket.send('two');
    assert.equal((await socket.nextOfType('echo')).text, 'one');
    assert.equal((await socket.nextOfType('error')).message, 'boom');
    assert.equal((await socket.nextOfType('echo')).text, 'two');
    await client.post('/name', { name: 'Carol' });
    assert.deepEqual(await socket.nextOfType('session'), { type: 'session', user: 'carol', name: 'Carol' });
    await socket.close();
    await waitFor(() => node.controller.calls.includes('close 1005'));
    assert.deepEqual(node.controller.calls, ['open carol', 'message one', 'message boom', 'error boom', 'message two', 'change carol', 'close 1005']);
  });

  test('a hook that fails without onError closes the socket with 1011', async () => {
    const node = await startNode(testPrefix('ws-1011'), {
      onOpen: (conn) => void conn.send({ type: 'hello' }),
      onMessage: () => {
        throw new Error('unhandled');
      },
    });
    const socket = await openWs(node);
    socket.send('anything');
    assert.equal((await socket.closedWithin(1000)).code, 1011);
  });
});

describe('the connection registry', () => {
  test('sockets by session and by user on this node, and the open-socket count', async () => {
    const node = await startNode(testPrefix('ws-registry'));
    const registry = node.container.cradle.connectionRegistry;
    const dave = await loggedIn(node, 'dave');
    const daveId = dave.sessionId()!;
    const a = await openWs(node, dave.cookieHeader);
    await openWs(node, dave.cookieHeader);
    await openWs(node);
    assert.equal(registry.size, 3);
    assert.equal(registry.ofSession(daveId).length, 2);
    assert.deepEqual(registry.ofUser('dave').map((conn) => conn.session.id), [daveId, daveId]);
    assert.equal(registry.ofUser('nobody').length, 0);

    // A login moves the sockets to the new id and user.
    await dave.post('/login', { username: 'david' });
    await a.next((message) => message.type === 'session' && message.user === 'david');
    await waitFor(() => registry.ofUser('david').length === 2);
    assert.equal(registry.ofUser('dave').length, 0);
    assert.equal(registry.ofSession(daveId).length, 0);
    assert.equal(registry.ofSession(dave.sessionId()!).length, 2);

    await a.close();
    await waitFor(() => registry.size === 2);
  });

  test('send to and close every socket of a user, across nodes', async () => {
    const prefix = testPrefix('ws-users');
    const nodeA = await startNode(prefix);
    const nodeB = await startNode(prefix);
    const onA = await openWs(nodeA, (await loggedIn(nodeA, 'erin')).cookieHeader);
    const onB = await openWs(nodeB, (await loggedIn(nodeB, 'erin')).cookieHeader);
    const other = await openWs(nodeB, (await loggedIn(nodeB, 'frank')).cookieHeader);

    const registryA = nodeA.container.cradle.connectionRegistry;
    assert.equal(await registryA.sendToUser('erin', { type: 'notice', text: 'hi' }), 1, 'one socket of erin on node A');
    assert.deepEqual(await onA.nextOfType('notice'), { type: 'notice', text: 'hi' });
    assert.deepEqual(await onB.nextOfType('notice'), { type: 'notice', text: 'hi' });
    other.send('ping');
    // Skipping the `devices` push of frank's own socket going online (docs/devices.md).
    assert.equal((await other.next((message) => message.type !== 'devices')).type, 'echo', 'frank got nothing');

    await registryA.closeUser('erin', 4401, 'password changed');
    const [closedA, closedB] = await Promise.all([onA.closedWithin(1000), onB.closedWithin(1000)]);
    assert.deepEqual(closedA, { code: 4401, reason: 'password changed' });
    assert.deepEqual(closedB, { code: 4401, reason: 'password changed' });
    assert.ok(other.open);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

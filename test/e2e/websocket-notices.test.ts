/**
 * Notices that scale out: a session's change notice reaches only the nodes holding sockets of
 * it (its own channel), user-wide notices still reach every node. Two demo app nodes on one
 * throwaway redis-server; what each node received is read from its `/metrics`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

let redis: RedisServer;
let inspect: Redis;
let nodeA: TestApp;
let nodeB: TestApp;
const prefix = testPrefix('notices');
const sockets: WsClient[] = [];

async function openWs(node: TestApp, client: Client): Promise<WsClient> {
  const socket = await WsClient.open(`${node.url}/ws`, { cookie: client.cookieHeader });
  sockets.push(socket);
  await socket.nextOfType('hello');
  return socket;
}

async function visitor(node: TestApp, name: string): Promise<Client> {
  const client = new Client(node.url);
  assert.equal((await client.put('/api/name', { name })).status, 200);
  return client;
}

/** A client on `node` sharing `client`'s cookies (the same browser, another node). */
function via(node: TestApp, client: Client): Client {
  const other = new Client(node.url);
  other.cookies = client.cookies;
  return other;
}

/** Session change notices `node` received so far (its `/metrics`). */
async function received(node: TestApp): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith('keepsake_session_notices_received_total '));
  assert.ok(line !== undefined, 'the metric is served');
  return Number(line.split(' ')[1]);
}

/** Subscribers of session `id`'s channel (named like its key). */
async function subscribers(id: string): Promise<number> {
  const reply = (await inspect.pubsub('NUMSUB', `${prefix}${id}`)) as [string, number];
  return Number(reply[1]);
}

before(async () => {
  redis = await RedisServer.start();
  inspect = redis.client();
  const options = { redis_connection_pool: { default: { port: String(redis.port) } }, session: { key_prefix: prefix } };
  nodeA = await startApp(options);
  nodeB = await startApp(options);
});

after(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await nodeA?.close();
  await nodeB?.close();
  inspect?.disconnect();
  await redis?.stop();
});

describe('per-session notice channels', () => {
  test('writes to a session with sockets only on node A reach A, and node B receives none of them', async () => {
    const onA = await visitor(nodeA, 'a');
    const onB = await visitor(nodeB, 'b');
    const socketA = await openWs(nodeA, onA);
    const socketB = await openWs(nodeB, onB); // B has a socket too: it is subscribed, just not to A's session
    assert.equal(await subscribers(onA.sessionId()!), 1, 'only node A listens to its session');
    const [beforeA, beforeB] = [await received(nodeA), await received(nodeB)];
    // Written through node B: the notice still goes only to A.
    const writer = via(nodeB, onA);
    for (let i = 1; i <= 5; i++) assert.equal((await writer.put('/api/name', { name: `a-${i}` })).status, 200);
    assert.equal((await socketA.next((message) => message.type === 'session' && message.name === 'a-5', 1000)).name, 'a-5');
    await eventually('node A counted the 5 notices', 1000, async () => (await received(nodeA)) - beforeA === 5);
    assert.equal((await received(nodeB)) - beforeB, 0, 'node B received no notice of a session it has no socket of');
    // And the other way round.
    assert.equal((await via(nodeA, onB).put('/api/name', { name: 'b-1' })).status, 200);
    await socketB.next((message) => message.type === 'session' && message.name === 'b-1', 1000);
    assert.equal((await received(nodeB)) - beforeB, 1);
    assert.equal((await received(nodeA)) - beforeA, 5);
  });

  test('a node leaves a session’s channel when its last socket of it closes', async () => {
    const client = await visitor(nodeA, 'leaving');
    const first = await openWs(nodeA, client);
    const second = await openWs(nodeA, client);
    const id = client.sessionId()!;
    assert.equal(await subscribers(id), 1, 'one subscription per node, whatever the number of sockets');
    await first.close();
    assert.equal(await subscribers(id), 1, 'another socket of the session is still open');
    await second.close();
    await eventually('node A left the channel', 1000, async () => (await subscribers(id)) === 0);
    const before = await received(nodeA);
    assert.equal((await client.put('/api/name', { name: 'unheard' })).status, 200);
    assert.equal(await received(nodeA), before, 'no socket, no notice');
  });

  test('a login on node B moves node A’s socket to the new id: later changes still reach it', async () => {
    const client = await visitor(nodeA, 'before login');
    const socket = await openWs(nodeA, client);
    const oldId = client.sessionId()!;
    const onB = via(nodeB, client);
    assert.equal((await onB.post('/api/login', { username: 'mover' })).status, 200);
    const newId = onB.sessionId()!;
    assert.notEqual(newId, oldId);
    assert.equal((await socket.next((message) => message.type === 'session' && message.user === 'mover', 1000)).authenticated, true);
    await eventually('node A moved to the new id’s channel', 1000, async () => (await subscribers(newId)) === 1 && (await subscribers(oldId)) === 0);
    assert.equal((await onB.put('/api/name', { name: 'after login' })).status, 200);
    assert.equal((await socket.next((message) => message.type === 'session' && message.name === 'after login', 1000)).user, 'mover');
  });

  test('a change right after a login is not lost while the node moves to the new id', async () => {
    for (let round = 0; round < 5; round++) {
      const client = await visitor(nodeA, 'racing');
      const socket = await openWs(nodeA, client);
      const onB = via(nodeB, client);
      await Promise.all([onB.post('/api/login', { username: `racer${round}` }), socket.nextOfType('session')]);
      assert.equal((await onB.put('/api/name', { name: `right after ${round}` })).status, 200);
      await socket.next((message) => message.type === 'session' && message.name === `right after ${round}`, 1000);
      await socket.close();
    }
  });
});

describe('user-wide notices still reach every node', () => {
  test('revoking the other devices closes their sockets on both nodes within 1 s', async () => {
    const sessions = await Promise.all([nodeA, nodeB, nodeB].map(async (node) => {
      const client = new Client(node.url);
      assert.equal((await client.post('/api/login', { username: 'everywhere' })).status, 200);
      return client;
    }));
    const onA = await openWs(nodeA, sessions[0]!);
    const onB = await openWs(nodeB, sessions[1]!);
    const began = Date.now();
    assert.equal((await sessions[2]!.post('/api/devices/revoke-others')).status, 200);
    const closed = await Promise.all([onA.closedWithin(1000), onB.closedWithin(1000)]);
    assert.deepEqual(closed.map((close) => close.code), [4401, 4401]);
    assert.ok(Date.now() - began < 1000, `closed after ${Date.now() - began} ms`);
  });
});

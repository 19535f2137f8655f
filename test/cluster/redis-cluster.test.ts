// keepsake on a real 3-master Redis Cluster, through two app nodes sharing one key prefix:
// login moves a session within its hash slot, concurrent adds from both nodes all survive,
// requests keep working while a slot migrates (ASK, then MOVED) and on a master added later
// (which gets the function library on first use), change notices published on one master reach
// subscribers on every master, a live push crosses app nodes, logout and "log out everywhere"
// end sessions and close sockets on both nodes. The cluster starts once for the whole file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { createKeepsake } from '../../src/index.js';
import { keySlot } from '../../src/redis/cluster-slot.js';
import { isSessionId, newSessionIdInSlot } from '../../src/session/session-id.js';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { WsClient } from '../support/ws-client.js';
import { RedisClusterServers } from '../support/redis-cluster.js';
import { freePort, parseInfo, RedisServer } from '../support/redis-server.js';

let cluster: RedisClusterServers;
let inspect: Cluster;
let prefix: string;
let nodeA: TestApp;
let nodeB: TestApp;
const sockets: WsClient[] = [];
const extraNodes: RedisServer[] = [];

before(async () => {
  cluster = await RedisClusterServers.start();
  inspect = cluster.client();
  prefix = testPrefix('cluster');
  const overrides = { session: { key_prefix: prefix }, redis_connection_pool: { default: { cluster: cluster.clusterSpec() } } };
  nodeA = await startApp(overrides);
  nodeB = await startApp(overrides);
  // A cold Cluster connection (slot map, three masters) can outlast acquire_timeout_ms on a
  // loaded machine; the tests below are about sessions, so start once every pool is connected.
  for (const node of [nodeA, nodeB]) {
    for (let attempt = 0; (await fetch(`${node.url}/ready`)).status !== 200; attempt++) {
      assert.ok(attempt < 50, 'the app never became ready on the cluster');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
});

after(async () => {
  await Promise.allSettled(sockets.map((socket) => socket.close()));
  await Promise.allSettled([nodeA?.close(), nodeB?.close()]);
  await cluster?.stop();
  await Promise.all(extraNodes.map((node) => node.stop()));
});

const key = (id: string) => prefix + id;

/** The master owning each slot range, from CLUSTER SLOTS. */
async function slotOwners(): Promise<{ start: number; end: number; port: number; id: string }[]> {
  const ranges = await inspect.cluster('SLOTS');
  return ranges.map(([start, end, [, port, id]]) => ({ start, end, port, id }));
}

async function ownerOf(slot: number): Promise<{ port: number; id: string }> {
  const owner = (await slotOwners()).find((range) => slot >= range.start && slot <= range.end);
  assert.ok(owner, `no master owns slot ${slot}`);
  return owner;
}

function server(port: number): RedisServer {
  const found = cluster.servers.find((candidate) => candidate.port === port);
  assert.ok(found, `no cluster node on port ${port}`);
  return found;
}

/** A client with a stored session holding a name and one basket item, made through `node`. */
async function sessionOn(node: TestApp, name: string): Promise<Client> {
  const client = new Client(node.url);
  const named = await client.put('/api/name', { name });
  assert.equal(named.status, 200, JSON.stringify(named.body));
  const added = await client.post('/api/basket/items', { sku: 'tea', qty: 2 });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  return client;
}

test('slots are computed as Redis does, and ids picked for a slot land in it', async () => {
  const keys = [
    ...Array.from({ length: 50 }, () => prefix + randomBytes(32).toString('base64url')),
    'a{b}c', '{}x', '{x', 'x}{y}', 'ks:{users}:abc', '{{a}}', 'κλειδί:ü',
  ];
  for (const candidate of keys) assert.equal(keySlot(candidate), await inspect.cluster('KEYSLOT', candidate), candidate);
  for (const slot of [0, 1, 5461, 10923, 16383, keySlot(prefix + 'x')]) {
    const id = newSessionIdInSlot(prefix, slot);
    assert.ok(isSessionId(id), id);
    assert.equal(await inspect.cluster('KEYSLOT', key(id)), slot);
  }
  // A prefix with a {hash tag} pins every key to one slot: any id will do.
  const pinned = 'app:{sessions}:';
  const id = newSessionIdInSlot(pinned, keySlot(`${pinned}x`));
  assert.ok(isSessionId(id));
  assert.equal(await inspect.cluster('KEYSLOT', pinned + id), keySlot(`${pinned}x`));
});

/** A client for `node` sharing `client`'s cookie jar: the same browser, another app node. */
function via(node: TestApp, client: Client): Client {
  const other = new Client(node.url);
  other.cookies = client.cookies;
  return other;
}

test('login on either node moves the session within its slot on every master: old key gone, new cookie, data kept', async () => {
  // Sessions until every master holds at least one, so logins run on all three.
  const clients: Client[] = [];
  const masters = new Set<number>();
  while (masters.size < 3 || clients.length < 6) {
    assert.ok(clients.length < 60, 'sessions never spread over the three masters');
    const client = await sessionOn(clients.length % 2 ? nodeB : nodeA, `user ${clients.length}`);
    clients.push(client);
    masters.add((await ownerOf(keySlot(key(client.sessionId()!)))).port);
  }
  await Promise.all(
    clients.map(async (created, index) => {
      const oldId = created.sessionId()!;
      const oldCookie = created.cookies.get('dmsession')!;
      // Log in through the other node than the one that created the session.
      const client = via(created.baseUrl === nodeA.url ? nodeB : nodeA, created);
      const login = await client.post('/api/login', { username: `member${index}` });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      assert.equal(login.body.authenticated, true);
      assert.equal(login.body.user, `member${index}`);
      assert.equal(login.body.name, `user ${index}`);
      assert.deepEqual(login.body.basket, [{ sku: 'tea', qty: 2 }]);
      assert.ok(login.setCookies.some((cookie) => cookie.startsWith('dmsession=')), 'a new cookie is set');
      const newId = client.sessionId()!;
      assert.ok(isSessionId(newId) && newId !== oldId);
      assert.equal(keySlot(key(newId)), keySlot(key(oldId)));
      assert.equal(await inspect.exists(key(oldId)), 0, 'no key named after the old id remains');
      assert.equal(await inspect.exists(key(newId)), 1);
      assert.ok((await inspect.pttl(key(newId))) > 0, 'the new key has a TTL');
      // Both nodes serve the new cookie; the old cookie is only a new anonymous session.
      for (const node of [nodeA, nodeB]) {
        const view = await via(node, client).get('/api/session');
        assert.equal(view.status, 200);
        assert.equal(view.body.user, `member${index}`);
      }
      const stale = new Client(nodeA.url);
      stale.cookies.set('dmsession', oldCookie);
      const anonymous = await stale.get('/api/session');
      assert.equal(anonymous.status, 200);
      assert.match(anonymous.body.user, /^anon-/);
      assert.equal(anonymous.body.name, null);
      assert.notEqual(stale.sessionId(), oldId);
    }),
  );
});

test('50 concurrent basket adds through both nodes all answer 201 and all survive', async () => {
  const onA = await sessionOn(nodeA, 'shopper');
  const onB = via(nodeB, onA); // the same browser session, through both nodes at once
  const adds = Array.from({ length: 50 }, (_, i) => (i % 2 ? onB : onA).post('/api/basket/items', { sku: `sku${i % 5}`, qty: 1 + (i % 3) }));
  const replies = await Promise.all(adds);
  assert.deepEqual(replies.map((reply) => reply.status), Array(50).fill(201), JSON.stringify(replies.find((reply) => reply.status !== 201)?.body));
  const expected = new Map<string, number>([['tea', 2]]);
  for (let i = 0; i < 50; i++) expected.set(`sku${i % 5}`, (expected.get(`sku${i % 5}`) ?? 0) + 1 + (i % 3));
  for (const client of [onA, onB]) {
    const basket = await client.get('/api/basket');
    assert.equal(basket.status, 200);
    const got = new Map<string, number>(basket.body.items.map((item: { sku: string; qty: number }) => [item.sku, item.qty]));
    assert.deepEqual(got, expected);
  }
});

/** Rounds of concurrent reads and writes on `mover` and its neighbours through node A: all succeed. */
async function burst(mover: Client, neighbours: Client[], phase: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const replies = await Promise.all([
      ...Array.from({ length: 4 }, () => mover.get('/api/session')),
      ...neighbours.map((other, index) => (index % 2 ? other.get('/api/session') : other.put('/api/name', { name: `neighbour ${round}` }))),
    ]);
    const failed = replies.filter((reply) => reply.status !== 200);
    assert.equal(failed.length, 0, `${phase} round ${round}: ${JSON.stringify(failed.map((reply) => reply.body))}`);
  }
}

test('a session keeps working while its slot migrates to another master (ASK, then MOVED)', async () => {
  const client = await sessionOn(nodeA, 'mover');
  const sessionKey = key(client.sessionId()!);
  const slot = keySlot(sessionKey);
  const source = await ownerOf(slot);
  const target = (await slotOwners()).find((range) => range.port !== source.port)!;
  const from = server(source.port);
  const to = server(target.port);
  // Other sessions on the same master, in other slots.
  const neighbours: Client[] = [];
  for (let tries = 0; neighbours.length < 6; tries++) {
    assert.ok(tries < 100, 'no sessions landed beside the moving one');
    const other = await sessionOn(nodeA, 'neighbour');
    const otherSlot = keySlot(key(other.sessionId()!));
    if (otherSlot !== slot && (await ownerOf(otherSlot)).port === source.port) neighbours.push(other);
  }

  // Migration half done: the key already lives on the target, the slot still on the source (ASK).
  await to.process.command(['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id]);
  await from.process.command(['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id]);
  const keys = (await from.process.command(['CLUSTER', 'GETKEYSINSLOT', String(slot), '1000'])) as string[];
  assert.ok(keys.includes(sessionKey));
  await from.process.command(['MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...keys]);
  await assert.rejects(from.process.command(['HGETALL', sessionKey]), /\bASK \d+ /, 'the source redirects with ASK');

  const duringRead = await client.get('/api/session');
  assert.equal(duringRead.status, 200, JSON.stringify(duringRead.body));
  assert.equal(duringRead.body.name, 'mover');
  const add = await client.post('/api/basket/items', { sku: 'jam', qty: 1 });
  assert.equal(add.status, 201, JSON.stringify(add.body));
  assert.equal((await client.put('/api/name', { name: 'moving' })).status, 200);
  // Concurrent requests for sessions on the same master share auto-pipelined batches with the
  // redirected ones: a batch mixing replies and ASK must not fail the requests.
  await burst(client, neighbours, 'ASK');

  // Migration finished: every master now names the target (the source answers MOVED).
  for (const node of [to, from, ...cluster.servers.filter((s) => s !== to && s !== from)]) {
    await node.process.command(['CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id]);
  }
  await burst(client, neighbours, 'MOVED');
  const onB = via(nodeB, client);
  for (const node of [client, onB]) {
    const view = await node.get('/api/session');
    assert.equal(view.status, 200, JSON.stringify(view.body));
    assert.equal(view.body.name, 'moving');
    assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 2 }, { sku: 'jam', qty: 1 }]);
  }
  assert.equal((await onB.post('/api/basket/items', { sku: 'jam', qty: 2 })).status, 201);
  assert.equal(await to.process.command(['HEXISTS', sessionKey, 'm:c']), 1, 'the session lives on the new master');
  const login = await onB.post('/api/login', { username: 'mover' });
  assert.equal(login.status, 200);
  assert.deepEqual(login.body.basket, [{ sku: 'tea', qty: 2 }, { sku: 'jam', qty: 3 }]);
});

/** Starts one more cluster-enabled redis-server (its bus port set, as port+10000 may be taken). */
async function startExtraNode(): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      const node = await RedisServer.start({
        args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--cluster-port', String(await freePort())],
      });
      extraNodes.push(node);
      return node;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

/** The bus port of a node, from its own line of CLUSTER NODES (`ip:port@busport ... myself`). */
async function busPort(node: RedisServer): Promise<string> {
  const own = String(await node.process.command(['CLUSTER', 'NODES'])).split('\n').find((line) => line.includes('myself'));
  return /:\d+@(\d+)/.exec(own ?? '')![1]!;
}

test('a master added by resharding gets the function library on its first write ("Function not found": load, retry once)', async () => {
  const client = await sessionOn(nodeA, 'newcomer');
  const sessionKey = key(client.sessionId()!);
  const slot = keySlot(sessionKey);
  const source = await ownerOf(slot);
  const from = server(source.port);

  const added = await startExtraNode();
  const addedId = String(await added.process.command(['CLUSTER', 'MYID']));
  await added.process.command(['CLUSTER', 'MEET', '127.0.0.1', String(source.port), await busPort(from)]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const views = await Promise.all([...cluster.servers, added].map((node) => node.process.command(['CLUSTER', 'NODES'])));
    const known = views.every((view) => String(view).split('\n').filter((line) => line.trim() !== '' && !/handshake|noaddr/.test(line)).length === 4);
    const state = parseInfo(String(await added.process.command(['CLUSTER', 'INFO']))).get('cluster_state');
    if (known && state === 'ok') break;
    assert.ok(Date.now() < deadline, 'the new node never joined the cluster');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(String(await added.process.command(['FUNCTION', 'LIST'])), '', 'the new master has no functions yet');

  await added.process.command(['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id]);
  await from.process.command(['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', addedId]);
  const keys = (await from.process.command(['CLUSTER', 'GETKEYSINSLOT', String(slot), '1000'])) as string[];
  await from.process.command(['MIGRATE', '127.0.0.1', String(added.port), '', '0', '5000', 'KEYS', ...keys]);
  for (const node of [added, from, ...cluster.servers.filter((other) => other !== from)]) {
    await node.process.command(['CLUSTER', 'SETSLOT', String(slot), 'NODE', addedId]);
  }

  // Through node B: MOVED to the new master, then FCALL there finds no library, loads it, retries.
  const onB = via(nodeB, client);
  const rename = await onB.put('/api/name', { name: 'on the new master' });
  assert.equal(rename.status, 200, JSON.stringify(rename.body));
  assert.match(String(await added.process.command(['FUNCTION', 'LIST'])), /keepsake_v5/);
  assert.equal((await client.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
  const login = await client.post('/api/login', { username: 'newcomer' });
  assert.equal(login.status, 200);
  assert.equal(login.body.name, 'on the new master');
  assert.deepEqual(login.body.basket, [{ sku: 'tea', qty: 3 }]);
  assert.equal(await added.process.command(['EXISTS', key(client.sessionId()!)]), 1, 'the session moved within the new master');
});

test('change notices published on one master reach subscribers of the session’s channel connected to every master', async () => {
  const client = await sessionOn(nodeA, 'notice');
  const id = client.sessionId()!;
  const subscribers: Redis[] = cluster.servers.map((node) => node.client());
  const heard = subscribers.map(() => [] as string[]);
  await Promise.all(
    subscribers.map(async (subscriber, index) => {
      subscriber.on('message', (_channel: string, message: string) => heard[index]!.push(message));
      await subscriber.subscribe(key(id));
    }),
  );
  assert.equal((await client.put('/api/name', { name: 'noticed' })).status, 200);
  const deadline = Date.now() + 5000;
  while (heard.some((messages) => !messages.includes(`c:${id}`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  heard.forEach((messages, index) => assert.ok(messages.includes(`c:${id}`), `subscriber on master ${index} heard the change`));
  await Promise.all(subscribers.map((subscriber) => subscriber.quit()));
});

/** A socket on `/ws` of `node` with `client`'s cookie, closed by `after`. */
async function openSocket(node: TestApp, client: Client): Promise<WsClient> {
  const socket = await WsClient.open(`${node.url}/ws`, { cookie: client.cookieHeader });
  sockets.push(socket);
  return socket;
}

test('a change made through node A is pushed live to a socket on node B; login keeps it, logout closes it with 4401 everywhere', async () => {
  const onA = await sessionOn(nodeA, 'live');
  assert.equal((await onA.post('/api/login', { username: 'pushy' })).status, 200);
  const socket = await openSocket(nodeB, onA);
  const hello = await socket.nextOfType('hello');
  assert.equal(hello.user, 'pushy');
  assert.equal(hello.name, 'live');

  assert.equal((await onA.put('/api/name', { name: 'pushed from A' })).status, 200);
  await socket.next((message) => message.type === 'session' && message.name === 'pushed from A', 3000);
  assert.equal((await onA.post('/api/basket/items', { sku: 'cake', qty: 3 })).status, 201);
  const basket = await socket.next((message) => message.type === 'session' && JSON.stringify(message.basket).includes('cake'), 3000);
  assert.deepEqual(basket.basket, [{ sku: 'tea', qty: 2 }, { sku: 'cake', qty: 3 }]);

  // Logging in again through A moves the session (same slot); the socket on B follows the new id.
  const oldId = onA.sessionId()!;
  const relogin = await onA.post('/api/login', { username: 'pushy2' });
  assert.equal(relogin.status, 200);
  assert.notEqual(onA.sessionId(), oldId);
  await socket.next((message) => message.type === 'session' && message.user === 'pushy2', 3000);
  assert.ok(socket.open);
  assert.equal((await onA.put('/api/name', { name: 'after login' })).status, 200);
  await socket.next((message) => message.type === 'session' && message.name === 'after login', 3000);

  // Logout through A: the key is gone, the socket on B closes with 4401, the cookie works nowhere.
  const id = onA.sessionId()!;
  const cookie = onA.cookies.get('dmsession')!;
  const logout = await onA.post('/api/logout');
  assert.equal(logout.status, 200);
  assert.deepEqual(logout.body, { ok: true });
  assert.ok(logout.setCookies.some((header) => /^dmsession=;/.test(header) && /max-age=0/i.test(header)));
  assert.equal((await socket.closedWithin(3000)).code, 4401);
  assert.equal(await inspect.exists(key(id)), 0);
  for (const node of [nodeA, nodeB]) {
    const replay = new Client(node.url);
    replay.cookies.set('dmsession', cookie);
    const view = await replay.get('/api/session');
    assert.equal(view.status, 200);
    assert.match(view.body.user, /^anon-/, 'the old cookie is only a new anonymous session');
    assert.notEqual(replay.sessionId(), id);
  }
});

test('log out everywhere: a user with sessions on several masters and sockets on both nodes loses them all', async () => {
  // Logins as one user until the user's sessions live on at least two masters.
  const devices: Client[] = [];
  const masters = new Set<number>();
  while (masters.size < 2 || devices.length < 3) {
    assert.ok(devices.length < 30, "the user's sessions never spread over two masters");
    const device = new Client((devices.length % 2 ? nodeB : nodeA).url);
    assert.equal((await device.post('/api/login', { username: 'roamer' })).status, 200);
    devices.push(device);
    masters.add((await ownerOf(keySlot(key(device.sessionId()!)))).port);
  }
  const bystander = new Client(nodeB.url);
  assert.equal((await bystander.post('/api/login', { username: 'stayer' })).status, 200);
  const live = await Promise.all(devices.map((device, index) => openSocket(index % 2 ? nodeA : nodeB, device)));
  const stays = await openSocket(nodeA, bystander);
  await Promise.all([...live, stays].map((socket) => socket.nextOfType('hello')));

  // A separate process with the same config (an admin task), not one of the app nodes.
  const admin = await createKeepsake(nodeA.config);
  try {
    const ids = devices.map((device) => device.sessionId()!);
    assert.deepEqual((await admin.sessionManager.userSessions('roamer')).sort(), [...ids].sort());
    assert.equal(await admin.sessionManager.destroyUser('roamer'), devices.length);
    for (const id of ids) assert.equal(await inspect.exists(key(id)), 0);
    assert.equal(await inspect.exists(`${prefix}user:roamer`), 0, 'the user index is gone too');
    assert.deepEqual(await admin.sessionManager.userSessions('roamer'), []);
  } finally {
    await admin.close();
  }
  const closed = await Promise.all(live.map((socket) => socket.closedWithin(3000)));
  assert.deepEqual(closed.map((close) => close.code), devices.map(() => 4401));
  for (const device of devices) assert.equal((await device.get('/api/session')).body.authenticated, false);
  assert.equal((await bystander.get('/api/session')).body.user, 'stayer');
  assert.ok(stays.open, "another user's socket stays open");
});

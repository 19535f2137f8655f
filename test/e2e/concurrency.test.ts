// No lost updates over real HTTP against the real Redis: concurrent requests of one visitor,
// on one app node and on two nodes sharing the Redis (where compare-and-set retries are real).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { ValueCodec } from '../../src/session/value-codec.js';

interface Item {
  sku: string;
  qty: number;
}

const codec = new ValueCodec();
let redis: Redis;
const apps: TestApp[] = [];

before(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
});

after(async () => {
  await Promise.all(apps.map((app) => app.close()));
  for (const prefix of new Set(apps.map((app) => app.prefix))) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

async function app(prefix = testPrefix('concurrency')): Promise<TestApp> {
  const started = await startApp({ session: { key_prefix: prefix } });
  apps.push(started);
  return started;
}

/** A visitor whose session exists (first request got the cookie), reachable on every given node. */
async function visitor(...nodes: TestApp[]): Promise<Client[]> {
  const clients = nodes.map((node) => new Client(node.url));
  const first = await clients[0]!.get('/api/session');
  assert.equal(first.status, 200);
  assert.ok(clients[0]!.sessionId(), 'the first request set the session cookie');
  for (const client of clients.slice(1)) client.cookies = clients[0]!.cookies; // one cookie jar: one browser
  return clients;
}

/** What Redis holds for the session: decoded data fields. */
async function stored(node: TestApp, client: Client): Promise<Record<string, unknown>> {
  const hash = await redis.hgetallBuffer(node.prefix + client.sessionId());
  return Object.fromEntries(
    Object.entries(hash)
      .filter(([field]) => field.startsWith('d:'))
      .map(([field, bytes]) => [field.slice(2), codec.decode(bytes)]),
  );
}

const bySku = (a: Item, b: Item) => a.sku.localeCompare(b.sku);
const skus = (n: number) => Array.from({ length: n }, (_, i) => `sku-${String(i).padStart(2, '0')}`);

/** Runs `count` requests at once, request i on clients[i % clients.length]. */
function burst<T>(clients: Client[], count: number, send: (client: Client, i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => send(clients[i % clients.length]!, i)));
}

async function distinctSkus(clients: Client[], node: TestApp) {
  const replies = await burst(clients, 50, (client, i) => client.post('/api/basket/items', { sku: skus(50)[i], qty: 1 }));
  assert.deepEqual(replies.map((reply) => reply.status), Array(50).fill(201), JSON.stringify(replies.find((reply) => reply.status !== 201)?.body));
  const expected = skus(50).map((sku) => ({ sku, qty: 1 }));
  const basket = await clients[0]!.get<{ items: Item[] }>('/api/basket');
  assert.deepEqual([...basket.body.items].sort(bySku), expected);
  assert.deepEqual([...((await stored(node, clients[0]!)).basket as Item[])].sort(bySku), expected);
  // Every reply shows the basket its own add produced: sizes 1..50, each once.
  assert.deepEqual(replies.map((reply) => reply.body.items.length).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
}

async function oneSku(clients: Client[], node: TestApp) {
  const replies = await burst(clients, 50, (client) => client.post('/api/basket/items', { sku: 'same', qty: 1 }));
  assert.deepEqual(replies.map((reply) => reply.status), Array(50).fill(201), JSON.stringify(replies.find((reply) => reply.status !== 201)?.body));
  assert.deepEqual((await clients[0]!.get('/api/basket')).body.items, [{ sku: 'same', qty: 50 }]);
  assert.deepEqual((await stored(node, clients[0]!)).basket, [{ sku: 'same', qty: 50 }]);
  // Each add was applied to the value the previous one stored: the replies show qty 1..50 once each.
  const seen = replies.map((reply) => (reply.body.items as Item[]).find((item) => item.sku === 'same')!.qty).sort((a, b) => a - b);
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1));
}

async function nameAndAdds(clients: Client[], node: TestApp) {
  const names = Array.from({ length: 10 }, (_, i) => `name-${i}`);
  const replies = await burst(clients, 40, (client, i) =>
    i % 4 === 0 ? client.put('/api/name', { name: names[i / 4] }) : client.post('/api/basket/items', { sku: `s${i}`, qty: 1 }),
  );
  assert.deepEqual(replies.map((reply) => reply.status), Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 200 : 201)));
  const view = (await clients[0]!.get('/api/session')).body;
  assert.ok(names.includes(view.name), `the name is one of those sent (last writer wins), got ${view.name}`);
  assert.equal(view.basket.length, 30, 'every add survived the renames');
  const data = await stored(node, clients[0]!);
  assert.equal(data.name, view.name);
  assert.equal((data.basket as Item[]).length, 30);
}

test('one node: 50 concurrent adds of distinct skus to one session all answer 201 and all survive', async () => {
  const node = await app();
  await distinctSkus(await visitor(node), node);
});

/** Two app nodes sharing the Redis and one key prefix. */
async function twoNodes(): Promise<[TestApp, TestApp]> {
  const prefix = testPrefix('concurrency2');
  return [await app(prefix), await app(prefix)];
}

test('one node: 50 concurrent adds of one sku give qty 50', async () => {
  const node = await app();
  await oneSku(await visitor(node), node);
});

test('one node: concurrent PUT /api/name and basket adds both survive', async () => {
  const node = await app();
  await nameAndAdds(await visitor(node), node);
});

test('two nodes sharing the Redis: 50 concurrent adds of distinct skus, alternating nodes, all survive', async () => {
  const [a, b] = await twoNodes();
  await distinctSkus(await visitor(a, b), a);
});

test('two nodes sharing the Redis: 50 concurrent adds of one sku, alternating nodes, give qty 50', async () => {
  const [a, b] = await twoNodes();
  await oneSku(await visitor(a, b), a);
});

test('two nodes sharing the Redis: concurrent PUT /api/name and basket adds both survive', async () => {
  const [a, b] = await twoNodes();
  await nameAndAdds(await visitor(a, b), a);
});

test('concurrent adds and removals of other skus: removals stick, adds survive', async () => {
  const [a, b] = await twoNodes();
  const clients = await visitor(a, b);
  for (const sku of ['r0', 'r1', 'r2', 'r3', 'r4']) assert.equal((await clients[0]!.post('/api/basket/items', { sku, qty: 1 })).status, 201);
  const replies = await burst(clients, 30, (client, i) =>
    i < 5 ? client.delete(`/api/basket/items/r${i}`) : client.post('/api/basket/items', { sku: `n${i}`, qty: 2 }),
  );
  assert.deepEqual(replies.map((reply) => reply.status), Array.from({ length: 30 }, (_, i) => (i < 5 ? 200 : 201)));
  const items = (await clients[0]!.get<{ items: Item[] }>('/api/basket')).body.items;
  assert.deepEqual([...items].sort(bySku), Array.from({ length: 25 }, (_, i) => ({ sku: `n${i + 5}`, qty: 2 })).sort(bySku));
});

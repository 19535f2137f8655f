// What update() costs Redis: an add to the basket with no conflict is one FCALL after the load,
// with no extra read, on a throwaway redis-server whose commands we can count and watch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';

let server: RedisServer;
const apps: TestApp[] = [];

before(async () => {
  server = await RedisServer.start();
});

after(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await server?.stop();
});

async function app(prefix = testPrefix('round-trips')): Promise<TestApp> {
  const started = await startApp({ session: { key_prefix: prefix }, redis_connection_pool: { default: { port: server.port } } });
  apps.push(started);
  return started;
}

/** Records the commands clients send (not those a Redis function runs) while `work` runs. */
async function clientCommands(work: () => Promise<void>): Promise<string[][]> {
  const signaller = server.client();
  await signaller.ping(); // connected before the window: its handshake is not counted
  const monitor = (await (server.client() as Redis).monitor()) as unknown as Redis & NodeJS.EventEmitter;
  const seen: string[][] = [];
  const marker = `end-of-window-${Date.now()}`;
  const ended = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) resolve();
      else if (source !== 'lua') seen.push(args);
    });
  });
  try {
    await work();
    await signaller.echo(marker); // MONITOR lists commands in execution order: all of work's are in
    await ended;
  } finally {
    monitor.disconnect();
  }
  return seen;
}

function tally(commands: string[][]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [name] of commands) counts[name!.toLowerCase()] = (counts[name!.toLowerCase()] ?? 0) + 1;
  return counts;
}

test('an uncontended update is one round trip: each add costs the load (HGETALL + PEXPIRE) and one FCALL, no extra read', async () => {
  const node = await app();
  const client = new Client(node.url);
  assert.equal((await client.get('/api/session')).status, 200); // creates the session, opens the pool
  assert.equal((await client.post('/api/basket/items', { sku: 'warm', qty: 1 })).status, 201);
  const key = node.prefix + client.sessionId();

  const adds = 10;
  const before = await server.commandStats();
  const commands = await clientCommands(async () => {
    for (let i = 0; i < adds; i++) {
      // half new skus, half the same sku again: both rewrite the basket key
      const reply = await client.post('/api/basket/items', { sku: i % 2 === 0 ? `sku-${i}` : 'warm', qty: 1 });
      assert.equal(reply.status, 201);
    }
  });
  const after = await server.commandStats();

  assert.deepEqual(tally(commands), { hgetall: adds, pexpire: adds, fcall: adds }, JSON.stringify(commands));
  assert.ok(commands.every((args) => args.includes(key)), 'every command is about this session');
  assert.equal((after.get('fcall') ?? 0) - (before.get('fcall') ?? 0), adds, 'commandstats: one fcall per add');
  assert.equal((after.get('hgetall') ?? 0) - (before.get('hgetall') ?? 0), adds, 'commandstats: one load per add, no extra read');
  assert.deepEqual((await client.get('/api/basket')).body.items.find((item: { sku: string }) => item.sku === 'warm'), { sku: 'warm', qty: 6 });
});

test('a read-only request after an update writes nothing: GET /api/basket is the load alone', async () => {
  const node = await app();
  const client = new Client(node.url);
  await client.post('/api/basket/items', { sku: 'a', qty: 1 });
  const commands = await clientCommands(async () => {
    assert.equal((await client.get('/api/basket')).status, 200);
  });
  assert.deepEqual(tally(commands), { hgetall: 1, pexpire: 1 });
});

test('50 concurrent adds of one sku across two nodes: all 201, qty 50, and the extra FCALLs are the cross-node retries', async (t) => {
  const prefix = testPrefix('round-trips2');
  const [a, b] = [await app(prefix), await app(prefix)];
  const first = new Client(a!.url);
  await first.get('/api/session');
  const second = new Client(b!.url);
  second.cookies = first.cookies;
  await second.get('/api/session'); // both nodes have their pool open
  const before = await server.commandStats();
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? first : second).post('/api/basket/items', { sku: 'same', qty: 1 })));
  const after = await server.commandStats();
  assert.deepEqual(replies.map((reply) => reply.status), Array(50).fill(201));
  assert.deepEqual((await first.get('/api/basket')).body.items, [{ sku: 'same', qty: 50 }]);
  const fcalls = (after.get('fcall') ?? 0) - (before.get('fcall') ?? 0);
  assert.ok(fcalls >= 50, `at least one FCALL per add (${fcalls})`);
  // Same-node adds wait in a queue and never conflict; only the other node's writes cause retries.
  // A node has one update of the key in flight at a time, so each of the other node's 25 writes
  // can fail at most one attempt here: at most 25 + 25 retries.
  assert.ok(fcalls <= 100, `${fcalls} FCALLs for 50 adds: more retries than the other node's writes can explain`);
  t.diagnostic(`${fcalls} FCALLs for 50 adds: ${fcalls - 50} compare-and-set retries between the two nodes`);
});

test('50 concurrent adds of one sku on one node: exactly one FCALL each (no retries without another node)', async () => {
  const node = await app();
  const client = new Client(node.url);
  await client.get('/api/session');
  const before = await server.commandStats();
  const replies = await Promise.all(Array.from({ length: 50 }, () => client.post('/api/basket/items', { sku: 'same', qty: 1 })));
  const after = await server.commandStats();
  assert.deepEqual(replies.map((reply) => reply.status), Array(50).fill(201));
  assert.deepEqual((await client.get('/api/basket')).body.items, [{ sku: 'same', qty: 50 }]);
  assert.equal((after.get('fcall') ?? 0) - (before.get('fcall') ?? 0), 50);
});

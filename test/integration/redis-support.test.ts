// Self-test for the throwaway Redis helpers in test/support.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisServer, freePort } from '../support/redis-server.js';
import { RedisClusterServers } from '../support/redis-cluster.js';
import { RedisSentinelGroup } from '../support/redis-sentinel.js';

test('freePort returns a usable port', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
});

test('RedisServer: start, stats, kill, restart with AOF replay', async (t) => {
  const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  t.after(() => server.stop());
  assert.equal(server.url(), `redis://127.0.0.1:${server.port}`);

  const client = server.client({ maxRetriesPerRequest: 0 });
  assert.equal(await client.set('k', 'v'), 'OK');
  assert.equal(await client.get('k'), 'v');

  const before = await server.totalCommands();
  await client.hset('h', 'f', '1');
  await client.hgetall('h');
  await client.hgetall('h');
  assert.equal((await server.totalCommands()) - before, 3, 'helper INFO calls are not counted');
  const stats = await server.commandStats();
  assert.equal(stats.get('hgetall'), 2);
  assert.equal(stats.get('set'), 1);
  assert.equal(stats.has('ping'), false);

  await server.kill();
  assert.equal(server.alive, false);
  await assert.rejects(client.get('k'));

  await server.restart();
  assert.equal(await server.client().ping(), 'PONG');
  assert.equal(await server.client().get('k'), 'v', 'appendonly file replayed on restart');

  await server.stop();
  await server.stop(); // idempotent
});

test('RedisClusterServers: keys across slots', async (t) => {
  const cluster = await RedisClusterServers.start();
  t.after(() => cluster.stop());
  assert.equal(cluster.nodes.length, 3);
  assert.equal(cluster.clusterSpec().split(',').length, 3);

  const client = cluster.client();
  const keys = Array.from({ length: 30 }, (_, i) => `key:${i}`);
  await Promise.all(keys.map((k) => client.set(k, k)));
  assert.deepEqual(await Promise.all(keys.map((k) => client.get(k))), keys);

  // Every master got some of the keys.
  const sizes = await Promise.all(
    cluster.nodes.map(async (n) => {
      const direct = new Redis({ host: n.host, port: n.port });
      try {
        return await direct.dbsize();
      } finally {
        direct.disconnect();
      }
    }),
  );
  assert.ok(sizes.every((s) => s > 0), `dbsize per node: ${sizes.join(',')}`);
});

test('RedisSentinelGroup: failover to the replica', async (t) => {
  const group = await RedisSentinelGroup.start();
  t.after(() => group.stop());
  assert.equal(group.sentinelSpec().split(',').length, 3);

  await group.killMaster();
  const promoted = await group.waitForFailover();
  assert.deepEqual(promoted, { host: '127.0.0.1', port: group.replica.port });

  const client = new Redis({ sentinels: group.sentinels, name: group.masterName });
  t.after(() => client.disconnect());
  assert.equal(await client.set('after-failover', '1'), 'OK');
  assert.equal(await client.get('after-failover'), '1');
  await client.quit();
});

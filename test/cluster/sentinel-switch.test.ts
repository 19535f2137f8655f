// Right after a Sentinel failover the old master still answers as a master for several seconds
// (the sentinels turn it into a replica only once they see it again, ~8 s on). A node whose pooled
// connections were opened before the failover would read the session there, while the nodes that
// connected since write to the new master: a logout done on the new master, then a read through
// the old connections, served the ended session. Each node now listens to the sentinels'
// `+switch-master` and leaves the old master's connections at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { consoleLogger } from '../../src/logger.js';
import { RedisPool } from '../../src/redis/redis-pool.js';
import { startApp, testConfig, testPrefix } from '../support/app-server.js';
import { eventually } from '../support/session-helpers.js';
import { Client } from '../support/http-client.js';
import { WsClient } from '../support/ws-client.js';
import { parseInfo, redisCommand } from '../support/redis-server.js';
import { RedisSentinelGroup } from '../support/redis-sentinel.js';

test('after a Sentinel failover, a node with connections to the old master does not serve a session a logout ended on the new one', async (t) => {
  const group = await RedisSentinelGroup.start();
  t.after(() => group.stop());
  const prefix = testPrefix('switch');
  const pool = { sentinels: group.sentinelSpec(), sentinel_name: group.masterName };
  const nodeA = await startApp({ session: { key_prefix: prefix }, redis_connection_pool: { default: pool } });
  t.after(() => nodeA.close());

  const alice = new Client(nodeA.url);
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
  // Node A's pool and its notice subscriber hold connections to the first master.
  const socket = await WsClient.open(`${nodeA.url}/ws`, { cookie: alice.cookieHeader });
  t.after(() => socket.socket.terminate());
  assert.equal((await socket.nextOfType('hello')).user, 'alice');
  const firstMaster = group.master;
  // Everything written so far is on the replica (a full round trip of WAIT): none of it is lost.
  assert.equal(await firstMaster.process.command(['WAIT', '1', '5000']), 1);

  await redisCommand(group.sentinels[0]!.port, ['SENTINEL', 'FAILOVER', group.masterName]);
  await group.waitForFailover(20_000);
  // The old master has not been turned into a replica yet: it would still serve what it holds.
  assert.equal(parseInfo(String(await firstMaster.process.command(['INFO', 'replication']))).get('role'), 'master', 'the old master still answers as one');

  // Node B starts after the failover: its connections go to the new master. Alice logs out there.
  const nodeB = await startApp({ session: { key_prefix: prefix }, redis_connection_pool: { default: pool } });
  t.after(() => nodeB.close());
  const aliceOnB = new Client(nodeB.url);
  aliceOnB.cookies = new Map(alice.cookies);
  const view = await aliceOnB.get('/api/session');
  assert.equal(view.body.user, 'alice', 'node B finds the session (replicated before the failover)');
  assert.equal((await aliceOnB.post('/api/logout')).status, 200);

  // Node A, asked with the cookie the logout ended: not alice any more.
  const again = new Client(nodeA.url);
  again.cookies = new Map(alice.cookies);
  const after = await again.get('/api/session');
  assert.equal(after.status, 200);
  assert.notEqual(after.body.user, 'alice', `node A served the ended session: ${JSON.stringify(after.body)}`);
  // And node A's socket of the session is closed by the logout's notice (its subscriber moved too).
  const closed = await socket.closedWithin(5000);
  assert.equal(closed.code, 4401);
});

test('a sentinel that refuses the +switch-master subscription is named in a warning, not ignored', async (t) => {
  const group = await RedisSentinelGroup.start();
  t.after(() => group.stop());
  const refusing = group.sentinels[1]!;
  await redisCommand(refusing.port, ['ACL', 'SETUSER', 'default', '-subscribe']);
  const warnings: string[] = [];
  const logger = { ...consoleLogger, warn: (_object: Record<string, unknown>, message: string) => void warnings.push(message) };
  const config = testConfig({ redis_connection_pool: { default: { sentinels: group.sentinelSpec(), sentinel_name: group.masterName } } });
  const pool = new RedisPool('default', config.redis_connection_pool.default!, logger);
  t.after(() => pool.close());
  assert.equal(await pool.ping(), true, 'the pool works (the watch does not stand in its way)');
  await eventually('the warning', 5000, async () => warnings.some((message) => message.includes(`${refusing.port} refused SUBSCRIBE +switch-master`)));
  assert.equal(warnings.filter((message) => message.includes('refused SUBSCRIBE')).length, 1, `only the refusing sentinel is named: ${warnings.join(' | ')}`);
});

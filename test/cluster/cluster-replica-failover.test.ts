// keepsake on a Redis Cluster with replicas (3 masters, 3 replicas): a master is killed while
// clients write, its replica is promoted, and writes continue: every client's adds succeed again,
// the keepsake function library is on the new master, the adds acknowledged before the kill (once
// the replica had them) are all there, and none is applied twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keySlot } from '../../src/redis/cluster-slot.js';
import { LIBRARY_NAME } from '../../src/redis/redis-functions.js';
import { startApp, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisClusterServers } from '../support/redis-cluster.js';
import { parseInfo, redisCommand, sleep, type RespReply } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';

const ACQUIRE_MS = 1000;
/** Short, so an answer that waits for the promotion (node timeout 2 s + election) shows past the bound. */
const COMMAND_MS = 500;
/**
 * A basket add sends two commands one after the other (the session's load, then the update's
 * write), and each may wait acquire_timeout_ms + command_timeout_ms (DEMO-APP.md "Bounds": per
 * command); plus a margin for a loaded machine.
 */
const BOUND_MS = 2 * (ACQUIRE_MS + COMMAND_MS) + 1500;

/** The port of the master serving `slot`, from any live node's CLUSTER SLOTS. */
async function masterOf(cluster: RedisClusterServers, slot: number): Promise<number> {
  for (const server of cluster.servers.filter((candidate) => candidate.alive)) {
    try {
      const ranges = (await server.process.command(['CLUSTER', 'SLOTS'])) as RespReply[][];
      const range = ranges.find((candidate) => slot >= Number(candidate[0]) && slot <= Number(candidate[1]));
      if (range) return Number((range[2] as RespReply[])[1]);
    } catch {
      // a node that is going down: ask the next
    }
  }
  throw new Error(`no live node knows who serves slot ${slot}`);
}

test('Cluster with replicas: a master killed under load, its replica promoted, writes continue and the function library is on the new master', { timeout: 120_000 }, async (t) => {
  const cluster = await RedisClusterServers.start({ masters: 3, replicas: 1 });
  t.after(() => cluster.stop());
  const roles = await cluster.roles();
  assert.equal([...roles.values()].filter((role) => role === 'master').length, 3);
  assert.equal([...roles.values()].filter((role) => role === 'slave').length, 3);

  const prefix = testPrefix('failover');
  const overrides = { session: { key_prefix: prefix }, redis_connection_pool: { default: { cluster: cluster.clusterSpec(), acquire_timeout_ms: String(ACQUIRE_MS), command_timeout_ms: String(COMMAND_MS) } } };
  const app = await startApp(overrides);
  t.after(() => app.close());
  await eventually('the app ready on the cluster', 15_000, async () => (await fetch(`${app.url}/ready`)).status === 200, 200);

  // Twelve clients, so every master holds some sessions.
  const clients = Array.from({ length: 12 }, () => new Client(app.url));
  for (const [i, client] of clients.entries()) assert.equal((await client.post('/api/basket/items', { sku: `c${i}-0`, qty: 1 })).status, 201);
  const slotOf = (client: Client) => keySlot(prefix + client.sessionId()!);
  const victimPort = await masterOf(cluster, slotOf(clients[0]!));

  // Adds acknowledged now, and replicated, must survive the failover.
  const acknowledged = new Map<Client, Set<string>>(clients.map((client, i) => [client, new Set([`c${i}-0`])]));
  for (const [i, client] of clients.entries()) {
    for (let n = 1; n <= 3; n++) {
      const reply = await client.post('/api/basket/items', { sku: `c${i}-${n}`, qty: 1 });
      assert.equal(reply.status, 201, JSON.stringify(reply.body));
      acknowledged.get(client)!.add(`c${i}-${n}`);
    }
  }
  const victim = cluster.servers.find((server) => server.port === victimPort)!;
  const offset = Number(parseInfo(String(await victim.process.command(['INFO', 'replication']))).get('master_repl_offset'));
  await eventually('the replica has every acknowledged write', 10_000, async () => {
    const info = parseInfo(String(await victim.process.command(['INFO', 'replication'])));
    const replica = [...info.entries()].find(([key]) => /^slave\d+$/.test(key))?.[1] ?? '';
    return Number(/offset=(\d+)/.exec(replica)?.[1] ?? -1) >= offset;
  });

  // Load during the failover: every client keeps adding (unique skus, qty 1).
  let loading = true;
  const statuses = new Map<Client, { sku: string; status: number; at: number; ms: number }[]>(clients.map((client) => [client, []]));
  const load = clients.map(async (client, i) => {
    for (let n = 4; loading; n++) {
      const sku = `c${i}-${n}`;
      const began = Date.now();
      const reply = await client.post('/api/basket/items', { sku, qty: 1 });
      statuses.get(client)!.push({ sku, status: reply.status, at: Date.now(), ms: Date.now() - began });
      await sleep(reply.status === 201 ? 20 : 100);
    }
  });

  await sleep(300);
  const killedAt = Date.now();
  await cluster.killNode(cluster.servers.indexOf(victim));
  const promotedPort = await (async () => {
    const slot = slotOf(clients[0]!);
    let port = victimPort;
    await eventually('a replica promoted for the killed master', 30_000, async () => {
      port = await masterOf(cluster, slot);
      return port !== victimPort;
    }, 200);
    return port;
  })();
  t.diagnostic(`master ${victimPort} killed; ${promotedPort} promoted after ${Date.now() - killedAt} ms`);
  await cluster.waitForState('ok', 20_000);

  // Writes continue: every client gets a 201 after the promotion.
  const promotedAt = Date.now();
  await eventually('every client adds again after the promotion', 20_000, async () =>
    clients.every((client) => statuses.get(client)!.some((entry) => entry.status === 201 && entry.at > promotedAt)), 200);
  loading = false;
  await Promise.all(load);
  const during = [...statuses.values()].flat();
  t.diagnostic(`writes during the failover: ${during.filter((entry) => entry.status !== 201).length} not 201 of ${during.length}; longest answer ${Math.max(...during.map((entry) => entry.ms))} ms`);

  // The function library is on the new master.
  const libraries = (await redisCommand(promotedPort, ['FUNCTION', 'LIST', 'LIBRARYNAME', LIBRARY_NAME])) as RespReply[];
  assert.ok(Array.isArray(libraries) && libraries.length === 1, `library ${LIBRARY_NAME} on the promoted master ${promotedPort}: ${JSON.stringify(libraries)}`);

  // Acknowledged adds are there, none twice; any not acknowledged is there at most once.
  for (const [i, client] of clients.entries()) {
    const basket = await client.get('/api/basket');
    assert.equal(basket.status, 200, JSON.stringify(basket.body));
    const stored = new Map((basket.body.items as { sku: string; qty: number }[]).map((item) => [item.sku, item.qty]));
    for (const sku of acknowledged.get(client)!) assert.equal(stored.get(sku), 1, `client ${i}: ${sku} acknowledged before the kill, stored qty ${stored.get(sku)}`);
    for (const entry of statuses.get(client)!) {
      if (entry.status === 201 && entry.at > promotedAt) assert.equal(stored.get(entry.sku), 1, `client ${i}: ${entry.sku} acknowledged after the promotion, stored qty ${stored.get(entry.sku)}`);
      assert.ok((stored.get(entry.sku) ?? 0) <= 1, `client ${i}: ${entry.sku} (answered ${entry.status}) stored qty ${stored.get(entry.sku)}`);
    }
  }

  // DEMO-APP.md "Bounds": a request waits at most acquire_timeout_ms + command_timeout_ms per command, then 503.
  await t.test('every answer during the failover came within acquire + command timeouts per command + a margin', () => {
    const late = during.filter((entry) => entry.ms > BOUND_MS);
    assert.deepEqual(late.map((entry) => `${entry.sku} ${entry.status} after ${entry.ms} ms`), [], `answers past ${BOUND_MS} ms`);
  });
});

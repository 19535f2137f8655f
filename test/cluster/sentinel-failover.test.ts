// keepsake on Sentinel-managed replication (one master, one replica, three sentinels): the master
// is killed while sessions are being read and written; after the sentinels promote the replica,
// requests succeed again within seconds without restarting the app, and sessions and writes that
// had reached the replica are all there. Counts of OK and failed requests before, during and after
// the failover are printed as test diagnostics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { WsClient } from '../support/ws-client.js';
import { parseInfo, sleep } from '../support/redis-server.js';
import { RedisSentinelGroup } from '../support/redis-sentinel.js';

let group: RedisSentinelGroup;
let app: TestApp;

before(async () => {
  group = await RedisSentinelGroup.start();
  app = await startApp({
    session: { key_prefix: testPrefix('sentinel') },
    redis_connection_pool: { default: { sentinels: group.sentinelSpec(), sentinel_name: group.masterName } },
  });
});

after(async () => {
  await app?.close();
  await group?.stop();
});

/** Waits until the replica has every write the master has (so none can be lost by the failover). */
async function replicaCaughtUp(): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const master = parseInfo(String(await group.master.process.command(['INFO', 'replication'])));
    const replica = parseInfo(String(await group.replica.process.command(['INFO', 'replication'])));
    if (master.get('master_repl_offset') === replica.get('slave_repl_offset')) return;
    assert.ok(Date.now() < deadline, 'the replica never caught up');
    await sleep(20);
  }
}

test('sessions keep working across a Sentinel failover: 503 while no master answers, then OK again within seconds', async (t) => {
  const clients = Array.from({ length: 4 }, () => new Client(app.url));
  // Sessions created, written and replicated before the failover.
  const tags: string[] = [];
  for (const [index, client] of clients.entries()) {
    assert.equal((await client.post('/api/basket/items', { sku: `kept${index}`, qty: index + 1 })).status, 201);
    tags.push((await client.get('/api/session')).body.user);
  }
  await replicaCaughtUp();
  // A socket open across the failover keeps getting live notices (its node's subscriber reconnects).
  const socket = await WsClient.open(`${app.url}/ws`, { cookie: clients[0]!.cookieHeader });
  t.after(() => socket.close());
  assert.equal((await socket.nextOfType('hello')).user, tags[0]);

  interface Round {
    startedAt: number;
    endedAt: number;
    ok: boolean;
    statuses: number[];
    failure?: string;
  }
  const rounds: Round[] = [];
  let running = true;
  let killedAt = Infinity;
  let recoveredAt: number | undefined;
  const lastNames = new Map<Client, string>();

  const traffic = clients.map(async (client, index) => {
    for (let number = 0; running; number++) {
      const name = `c${index}-r${number}`;
      const startedAt = Date.now();
      const replies: { status: number; body: unknown }[] = [];
      try {
        replies.push(await client.put('/api/name', { name }));
        replies.push(await client.get('/api/session'));
      } catch (error) {
        replies.push({ status: 0, body: String(error) });
      }
      const ok = replies.length === 2 && replies.every((reply) => reply.status === 200);
      if (replies[0]!.status === 200) lastNames.set(client, name);
      const round: Round = { startedAt, endedAt: Date.now(), ok, statuses: replies.map((reply) => reply.status) };
      if (!ok) round.failure = JSON.stringify(replies.find((reply) => reply.status !== 200)!.body);
      rounds.push(round);
      if (ok && startedAt >= killedAt) recoveredAt ??= round.endedAt;
      await sleep(ok ? 5 : 50);
    }
  });

  let failedOverAt = Infinity;
  try {
    await sleep(700);
    killedAt = Date.now();
    await group.killMaster();
    const promoted = await group.waitForFailover(20_000);
    failedOverAt = Date.now();
    t.diagnostic(`sentinels agree on the promoted replica ${promoted.host}:${promoted.port} ${failedOverAt - killedAt} ms after the kill`);
    const deadline = failedOverAt + 15_000;
    while (recoveredAt === undefined) {
      assert.ok(Date.now() < deadline, `requests did not succeed again within 15 s of the failover (last failure: ${rounds.at(-1)?.failure})`);
      await sleep(50);
    }
    t.diagnostic(`first request started after the kill succeeded ${recoveredAt - killedAt} ms after the kill`);
    await sleep(Math.max(0, recoveredAt + 2500 - Date.now()));
  } finally {
    running = false;
    await Promise.allSettled(traffic);
  }

  const phases = {
    // Rounds still in flight when the master died count as "during".
    before: rounds.filter((round) => round.endedAt < killedAt),
    during: rounds.filter((round) => round.endedAt >= killedAt && round.startedAt < failedOverAt),
    after: rounds.filter((round) => round.startedAt >= failedOverAt),
  };
  for (const [phase, list] of Object.entries(phases)) {
    const statuses = new Map<number, number>();
    for (const status of list.flatMap((round) => round.statuses)) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const failures = [...new Set(list.flatMap((round) => round.failure ?? []))];
    t.diagnostic(`${phase}: ${list.filter((round) => round.ok).length} OK, ${list.filter((round) => !round.ok).length} failed rounds of PUT /api/name + GET /api/session (HTTP statuses ${JSON.stringify(Object.fromEntries(statuses))})${failures.length ? ` ${failures.join(' | ')}` : ''}`);
  }
  assert.ok(phases.before.length > 0, 'traffic ran before the kill');
  assert.ok(phases.before.every((round) => round.ok), 'every request before the kill succeeded');
  // A failed request is a 503 with the error shape: it never claims a write it did not store.
  for (const round of rounds.filter((round) => !round.ok)) {
    assert.ok(round.statuses.every((status) => status === 200 || status === 503), round.failure);
    assert.match(round.failure!, /ERR_SESSION_STORE_UNAVAILABLE/);
  }
  const settled = rounds.filter((round) => round.startedAt >= recoveredAt! + 1000);
  assert.ok(settled.length > 0 && settled.every((round) => round.ok), `every request from 1 s after recovery on succeeded (${settled.filter((round) => !round.ok).map((round) => round.failure).join(' | ')})`);

  // The same sessions, not new ones: the pre-failover (replicated) basket and the last
  // acknowledged name (written on the new master) are there.
  for (const [index, client] of clients.entries()) {
    const view = await client.get('/api/session');
    assert.equal(view.status, 200);
    assert.equal(view.body.user, tags[index], 'the session created before the failover');
    assert.deepEqual(view.body.basket, [{ sku: `kept${index}`, qty: index + 1 }]);
    assert.equal(view.body.name, lastNames.get(client));
  }

  assert.ok(socket.open, 'the socket stayed open through the failover');
  assert.equal((await clients[0]!.put('/api/name', { name: 'after the failover' })).status, 200);
  await socket.next((message) => message.type === 'session' && message.name === 'after the failover', 5000);
});

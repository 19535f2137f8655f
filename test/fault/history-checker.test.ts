// The fault-injecting history checker (issue 13): many clients over two app nodes do random
// session operations while replies are lost after Redis ran the command, connections are killed,
// Redis is killed and restarted (appendfsync always) or stopped, and the recorded history must
// show no broken promise. Seeded: the seed is printed; KEEPSAKE_CHECKER_SEED=<seed> replays the
// same operations and faults, KEEPSAKE_CHECKER_SECONDS sets how long the load runs and
// KEEPSAKE_CHECKER_FAULTS=reply-lost,sigstop,… which faults are injected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startApp } from '../support/app-server.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { Client } from '../support/http-client.js';
import { faultsFromEnv, isWriteCall, report, runHistory, seedFromEnv } from '../support/history-run.js';
import { RedisServer } from '../support/redis-server.js';

const SECONDS = Number(process.env.KEEPSAKE_CHECKER_SECONDS ?? 50);

test(`history checker: ${SECONDS} s of random operations on two nodes under faults, no anomaly`, { timeout: (SECONDS + 60) * 1000 }, async (t) => {
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (replay with KEEPSAKE_CHECKER_SEED=${seed})`);
  const result = await runHistory({ seed, durationMs: SECONDS * 1000, faults: faultsFromEnv(), log: (line) => t.diagnostic(line) });
  for (const line of report(result).split('\n')) t.diagnostic(line);
  if (result.anomalies.length > 0) {
    const file = path.join(os.tmpdir(), `keepsake-history-${seed}.json`);
    writeFileSync(file, JSON.stringify(result, null, 1));
    t.diagnostic(`history and anomalies written to ${file}`);
  }
  assert.ok(result.figures.operations > SECONDS * 20, `only ${result.figures.operations} operations ran`);
  assert.ok(Object.values(result.figures.faults).some((count) => count > 0), 'no fault was injected: the run did not test what it is for');
  assert.deepEqual(result.anomalies, [], `anomalies (seed ${seed}):\n${report(result)}`);
});

test('eight basket adds in a row, the reply of each write lost after Redis ran it: each add answered 201 is applied exactly once', async (t) => {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const proxy = await FaultProxy.start(server.port);
  t.after(() => proxy.close());
  const app = await startApp({ redis_connection_pool: { default: { port: String(proxy.port), acquire_timeout_ms: '500', command_timeout_ms: '1000' } } });
  t.after(() => app.close());

  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  const answered = new Map<string, number>();
  for (let i = 0; i < 8; i++) {
    const lost = proxy.loseNextReply(isWriteCall);
    const sku = `tea-${i}`;
    const reply = await alice.post('/api/basket/items', { sku, qty: 1 });
    answered.set(sku, reply.status);
    assert.ok([201, 503].includes(reply.status), `add ${i} answered ${reply.status} ${JSON.stringify(reply.body)}`);
    assert.ok(await lost, `the reply of add ${i}'s write was lost`);
  }
  assert.equal(proxy.counts.repliesLost, 8);
  const basket = await alice.get('/api/basket');
  assert.equal(basket.status, 200);
  const stored = new Map((basket.body.items as { sku: string; qty: number }[]).map((item) => [item.sku, item.qty]));
  t.diagnostic(`answered / stored qty: ${[...answered].map(([sku, status]) => `${sku} ${status}/${stored.get(sku) ?? 0}`).join(', ')}`);
  for (const [sku, status] of answered) {
    if (status === 201) assert.equal(stored.get(sku), 1, `${sku} answered 201: stored qty ${stored.get(sku)}`);
    else assert.ok((stored.get(sku) ?? 0) <= 1, `${sku} answered 503: stored qty ${stored.get(sku)}`);
  }
});

/**
 * update() queued behind other updates of the same key on one node: its time budget
 * (session.update_timeout_ms) counts from the call, not from when it leaves the queue. An update
 * whose budget ran out while queued is answered without ever being sent to Redis: 503 when Redis
 * failed an update ahead of it (Redis is the reason), else 409 ERR_SESSION_CONFLICT.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Session } from '../../src/index.js';
import { startKeepsakeApp, testConfig, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { dropPrefix, eventually, inspector } from '../support/session-helpers.js';

interface Outcome {
  ok: boolean;
  code: string | null;
  ms: number;
}

/** A fastify app whose `/burst` route starts the session, calls `before`, then runs `count` updates of one key at once. */
async function burstApp(
  t: TestContext,
  overrides: Parameters<typeof testConfig>[0],
  count: number,
  fn: (n: number | undefined) => unknown,
  before: () => void = () => undefined,
): Promise<{ client: Client; prefix: string }> {
  const config = testConfig(overrides);
  const { url } = await startKeepsakeApp(t, config, (app, sessions) => {
    app.post('/count', async (request) => {
      const session = await sessions.start(request);
      return { count: await session.data.update('count' as never, ((n: number | undefined) => (n ?? 0) + 1) as never) };
    });
    app.post('/burst', async (request) => {
      const session: Session = await sessions.start(request);
      before();
      const began = performance.now();
      const settled = await Promise.allSettled(Array.from({ length: count }, () => session.data.update('count' as never, fn as never).then(() => performance.now() - began)));
      const outcomes: Outcome[] = [];
      for (const result of settled) {
        if (result.status === 'fulfilled') outcomes.push({ ok: true, code: null, ms: result.value });
        else outcomes.push({ ok: false, code: (result.reason as { code?: string }).code ?? String(result.reason), ms: performance.now() - began });
      }
      return { outcomes };
    });
  });
  return { client: new Client(url), prefix: config.session.key_prefix };
}

test('queued updates with a slow fn: those whose budget ran out in the queue answer 409 at once and are never sent', async (t) => {
  const redis = inspector();
  const prefix = testPrefix('queue-budget');
  t.after(async () => {
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });
  const slowFn = async (n: number | undefined) => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return (n ?? 0) + 1;
  };
  const { client } = await burstApp(t, { session: { key_prefix: prefix, update_timeout_ms: 300 } as never }, 6, slowFn as never);
  assert.equal((await client.post('/count')).body.count, 1);
  const id = client.sessionId()!;

  const { outcomes } = (await client.post('/burst')).body as { outcomes: Outcome[] };
  const applied = outcomes.filter((outcome) => outcome.ok).length;
  const refused = outcomes.filter((outcome) => !outcome.ok);
  // 200 ms per fn: the first two leave the queue inside the 300 ms budget, the rest do not.
  assert.ok(applied >= 1 && applied <= 2, `one or two updates applied (got ${JSON.stringify(outcomes)})`);
  assert.ok(refused.length >= 4, `the others were refused (got ${JSON.stringify(outcomes)})`);
  for (const outcome of refused) {
    assert.equal(outcome.code, 'ERR_SESSION_CONFLICT');
    assert.ok(outcome.ms < 300 + 200 + 400, `a queued update is answered when its budget runs out, not after the queue drains (${Math.round(outcome.ms)} ms)`);
  }
  const stored = (await client.post('/count')).body.count as number;
  assert.equal(stored, 1 + applied + 1, 'refused updates wrote nothing: the count holds the applied ones only');
  assert.equal(id, client.sessionId());
});

test('Redis paused (SIGSTOP): queued updates answer within update_timeout_ms + command_timeout_ms, not one command timeout each; the expired ones are never sent', async (t) => {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const COMMAND_MS = 400;
  const BUDGET_MS = 1000;
  const COUNT = 12;
  let paused = false;
  const pause = () => {
    paused = true;
    server.process.child.kill('SIGSTOP');
  };
  t.after(() => {
    if (paused) server.process.child.kill('SIGCONT');
  });
  const { client, prefix } = await burstApp(
    t,
    {
      session: { update_timeout_ms: String(BUDGET_MS) } as never,
      redis_connection_pool: { default: { port: String(server.port), command_timeout_ms: String(COMMAND_MS), acquire_timeout_ms: '300' } },
    },
    COUNT,
    (n) => (n ?? 0) + 1,
    pause,
  );
  assert.equal((await client.post('/count')).body.count, 1);
  const key = prefix + client.sessionId()!;
  const direct = server.client();
  const before = await direct.hgetBuffer(key, 'd:count');

  const reply = await client.post('/burst');
  const { outcomes } = reply.body as { outcomes: Outcome[] };
  server.process.child.kill('SIGCONT');
  paused = false;
  assert.equal(outcomes.length, COUNT);
  for (const outcome of outcomes) {
    assert.equal(outcome.ok, false);
    assert.equal(outcome.code, 'ERR_SESSION_STORE_UNAVAILABLE', 'Redis is the reason: 503, not a conflict');
    // Unfixed, the k-th update waited k × command_timeout_ms (4.8 s for the 12th).
    assert.ok(outcome.ms < BUDGET_MS + COMMAND_MS + 1000, `answered after ${Math.round(outcome.ms)} ms`);
  }
  // Only updates that left the queue inside their budget were sent (at 0, 400 and 800 ms): the
  // rest never reach Redis, not even once it runs again.
  // The first update sent while Redis was paused runs once Redis does (a late write after its 503).
  await eventually('Redis ran what was sent while it was paused', 5000, async () => !(await direct.hgetBuffer(key, 'd:count'))!.equals(before!));
  const fcalls = async () => Number(/cmdstat_fcall:calls=(\d+)/.exec(await direct.info('commandstats'))?.[1] ?? 0);
  const sent = await fcalls();
  assert.ok(sent <= 1 + 3, `at most three of the ${COUNT} queued updates were sent (FCALLs: ${sent}, one of them the first /count)`);
});

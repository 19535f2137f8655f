// Redis faults against a throwaway redis-server: answers stay bounded and truthful, and the app
// recovers on its own once Redis is back.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startApp, type TestApp } from '../support/app-server.js';
import { Client, type Reply } from '../support/http-client.js';
import { RedisServer, redisCommand, sleep, untilBusy } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

const ACQUIRE_MS = 500;
const COMMAND_MS = 1000;
/** acquire_timeout_ms + command_timeout_ms + a generous margin for a loaded test machine. */
const BOUND_MS = 3000;

function poolOverrides(server: RedisServer, extra: Record<string, string> = {}) {
  return {
    redis_connection_pool: {
      default: { port: String(server.port), acquire_timeout_ms: String(ACQUIRE_MS), command_timeout_ms: String(COMMAND_MS), ...extra },
    },
  };
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const began = performance.now();
  const value = await work();
  return { value, ms: performance.now() - began };
}

function assertUnavailable(reply: Reply, what: string): void {
  assert.equal(reply.status, 503, `${what}: status (body ${JSON.stringify(reply.body)})`);
  assert.equal(reply.body?.error?.code, 'ERR_SESSION_STORE_UNAVAILABLE', `${what}: error code`);
  assert.match(reply.headers.get('retry-after') ?? '', /^\d+$/, `${what}: Retry-After`);
}

async function withServerAndApp(
  t: { after(fn: () => Promise<void>): void },
  args: string[],
  overrides: (server: RedisServer) => Parameters<typeof startApp>[0],
): Promise<{ server: RedisServer; app: TestApp }> {
  const server = await RedisServer.start({ args });
  t.after(() => server.stop());
  const app = await startApp(overrides(server));
  t.after(() => app.close());
  return { server, app };
}

test('Redis killed: /health 200, /ready 503, session routes 503 within the bound; restarted: requests succeed again', async (t) => {
  const { server, app } = await withServerAndApp(t, [], (s) => poolOverrides(s));
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  assert.equal((await app.app.inject({ method: 'GET', url: '/ready' })).statusCode, 200);

  await server.kill();

  const health = await alice.get('/health');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok' });
  assert.equal(health.setCookies.length, 0);

  const ready = await timed(() => alice.get('/ready'));
  assert.equal(ready.value.status, 503);
  assert.deepEqual(ready.value.body, { status: 'unavailable' });
  assert.ok(ready.ms < BOUND_MS, `/ready answered after ${Math.round(ready.ms)} ms`);

  // Existing session (read), write, and a new visitor (create), several at once.
  const newcomer = new Client(app.url);
  const replies = await timed(() =>
    Promise.all([
      alice.get('/api/session'),
      alice.put('/api/name', { name: 'Bob' }),
      alice.post('/api/basket/items', { sku: 'tea', qty: 1 }),
      newcomer.get('/api/session'),
      ...Array.from({ length: 8 }, () => new Client(app.url).put('/api/name', { name: 'x' })),
    ]),
  );
  assert.ok(replies.ms < BOUND_MS, `503s took ${Math.round(replies.ms)} ms, bound ${BOUND_MS} ms`);
  replies.value.forEach((reply, i) => assertUnavailable(reply, `request ${i}`));
  assert.equal(replies.value[3]!.setCookies.length, 0, 'no cookie for a session that was never stored');
  // A new visitor's update() fails first: that failure is the reply, and the persist is not tried
  // after it (it would wait on the down Redis a second time).
  const failedBefore = await failures(alice);
  const basket = await new Client(app.url).post('/api/basket/items', { sku: 'tea', qty: 1 });
  assertUnavailable(basket, "a new visitor's basket add");
  assert.equal(basket.setCookies.length, 0);
  assert.equal(await failures(alice), failedBefore + 1, "one failed write counted, the update's: no persist was tried after it");

  await server.restart();
  // The throwaway Redis kept nothing: Alice's old cookie names no session, so she gets a new one.
  const recovered = await eventually('a write after the restart', 5000, async () => (await alice.put('/api/name', { name: 'Carol' })).status === 200);
  t.diagnostic(`recovered ${recovered} ms after the restart`);
  const view = await alice.get('/api/session');
  assert.equal(view.status, 200);
  assert.equal(view.body.name, 'Carol', 'the write after recovery is stored (the Lua library was reloaded)');
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  assert.deepEqual((await alice.get('/api/basket')).body, { items: [{ sku: 'tea', qty: 2 }] });
  assert.equal((await alice.get('/ready')).status, 200);
  assert.equal(await server.client().exists(`${app.prefix}${alice.sessionId()}`), 1);
});

test('Redis restarted: the WebSocket subscriber resubscribes, pushes resume and the reconnect is counted', async (t) => {
  // appendonly: the session outlives the restart, as it would on a production Redis.
  const { server, app } = await withServerAndApp(t, ['--appendonly', 'yes', '--appendfsync', 'always'], (s) => poolOverrides(s));
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  const socket = await WsClient.open(`${app.url}/ws`, { cookie: alice.cookieHeader });
  t.after(() => socket.socket.terminate());
  assert.equal((await socket.next((message) => message.type === 'hello')).name, 'Alice');

  await server.kill();
  assertUnavailable(await alice.put('/api/name', { name: 'lost' }), 'PUT while Redis is down');
  await server.restart();
  await eventually('the write after the restart', 5000, async () => (await alice.put('/api/name', { name: 'Bob' })).status === 200);
  // The notice of that write may have been published before the subscriber was back; the
  // subscriber re-reads on resubscribe, so the socket shows Bob either way.
  const pushed = await socket.next((message) => message.type === 'session' && message.name === 'Bob', 5000);
  assert.equal(pushed.user, (await alice.get('/api/session')).body.user);
  await eventually('the subscriber reconnect counted', 5000, async () => {
    const text = String((await alice.get('/metrics')).body);
    return /^keepsake_pubsub_reconnects_total [1-9]/m.test(text);
  });
  // And later changes are pushed as usual.
  assert.equal((await alice.put('/api/name', { name: 'Carol' })).status, 200);
  await socket.next((message) => message.type === 'session' && message.name === 'Carol', 2000);
});

test('CLIENT KILL TYPE normal: the next requests succeed, and borrowing sends no PING', async (t) => {
  const { server, app } = await withServerAndApp(t, [], (s) => poolOverrides(s));
  const clients = Array.from({ length: 6 }, () => new Client(app.url));
  // Several connections in the pool, then idle.
  for (const client of clients) assert.equal((await client.put('/api/name', { name: 'before' })).status, 200);
  await Promise.all(clients.map((client) => client.get('/api/session')));

  const killed = await server.process.command(['CLIENT', 'KILL', 'TYPE', 'normal']);
  assert.ok(Number(killed) >= 1, `CLIENT KILL closed ${String(killed)} connections`);

  const after = await Promise.all(clients.map((client, i) => client.put('/api/name', { name: `after-${i}` })));
  after.forEach((reply, i) => assert.equal(reply.status, 200, `request ${i} after CLIENT KILL: ${JSON.stringify(reply.body)}`));
  for (const [i, client] of clients.entries()) assert.equal((await client.get('/api/session')).body.name, `after-${i}`);

  // Killed again, this time one request right away, repeatedly: never a failure.
  for (let round = 0; round < 5; round++) {
    await server.process.command(['CLIENT', 'KILL', 'TYPE', 'normal']);
    const reply = await clients[0]!.get('/api/session');
    assert.equal(reply.status, 200, `round ${round}: ${JSON.stringify(reply.body)}`);
  }
  assert.equal((await server.commandStats()).get('ping') ?? 0, 0, 'a borrow costs no PING');
});

/**
 * A TCP proxy to Redis that can cut the connections it carries the way a firewall or NAT drops
 * idle ones: silently, no FIN, no RST. New connections still go through.
 */
class CuttingProxy {
  readonly #server: net.Server;
  readonly #open = new Set<{ cut: boolean; sockets: net.Socket[] }>();

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(targetPort: number): Promise<CuttingProxy> {
    const server = net.createServer();
    const proxy = new CuttingProxy(server);
    server.on('connection', (client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
      const pair = { cut: false, sockets: [client, upstream] };
      proxy.#open.add(pair);
      client.on('data', (data) => void (pair.cut || upstream.write(data)));
      upstream.on('data', (data) => void (pair.cut || client.write(data)));
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        from.on('error', () => undefined);
        from.on('close', () => {
          if (!pair.cut) to.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Every connection open now stops carrying data, in both directions, without closing. */
  cutOpenConnections(): void {
    for (const pair of this.#open) pair.cut = true;
  }

  async close(): Promise<void> {
    for (const pair of this.#open) for (const socket of pair.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** A throwaway Redis reached through a CuttingProxy, and an app using it; all stopped after `t`. */
async function startBehindProxy(t: TestContext) {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const proxy = await CuttingProxy.start(server.port);
  t.after(() => proxy.close());
  const app = await startApp({ redis_connection_pool: { default: { port: String(proxy.port), acquire_timeout_ms: String(ACQUIRE_MS), command_timeout_ms: String(COMMAND_MS) } } });
  t.after(() => app.close());
  return { server, proxy, app };
}

test('network cut while idle: the stale connection is replaced without failing the request', async (t) => {
  const { proxy, app } = await startBehindProxy(t);
  const clients = Array.from({ length: 4 }, () => new Client(app.url));
  await Promise.all(clients.map((client) => client.put('/api/name', { name: 'before' }))); // several connections
  for (const client of clients) assert.equal((await client.get('/api/session')).status, 200);

  proxy.cutOpenConnections();
  await sleep(5500); // idle longer than IDLE_PING_AFTER_MS (5 s)

  for (const [i, client] of clients.entries()) {
    const reply = await timed(() => client.put('/api/name', { name: `after-${i}` }));
    assert.equal(reply.value.status, 200, `request ${i}: ${JSON.stringify(reply.value.body)}`);
    assert.ok(reply.ms < BOUND_MS, `request ${i} took ${Math.round(reply.ms)} ms`);
    assert.equal((await client.get('/api/session')).body.name, `after-${i}`);
  }
});

test('network cut while busy: one 503 within the bound, then the connection is replaced', async (t) => {
  const { proxy, app } = await startBehindProxy(t);
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'before' })).status, 200); // one connection

  proxy.cutOpenConnections();
  const cut = await timed(() => alice.put('/api/name', { name: 'during' }));
  assertUnavailable(cut.value, 'the request on the cut connection');
  assert.ok(cut.ms < BOUND_MS, `answered after ${Math.round(cut.ms)} ms`);
  // The reply never came, so the connection is in doubt and is not lent again.
  assert.equal((await alice.put('/api/name', { name: 'after' })).status, 200);
  assert.equal((await alice.get('/api/session')).body.name, 'after');
});

test('DEBUG SLEEP with pool max 1: 503 within the bound, no hang, then OK', async (t) => {
  const { server, app } = await withServerAndApp(t, ['--enable-debug-command', 'yes'], (s) => poolOverrides(s, { max: '1' }));
  const clients = Array.from({ length: 5 }, () => new Client(app.url));
  for (const client of clients) assert.equal((await client.put('/api/name', { name: 'before' })).status, 200);

  const sleeping = redisCommand(server.port, ['DEBUG', 'SLEEP', '4'], { timeoutMs: 10_000 });
  await untilBusy(server.port); // the sleep has begun

  const replies = await timed(() =>
    Promise.all([
      ...clients.map((client) => client.get('/api/session')),
      ...clients.map((client) => client.put('/api/name', { name: 'during' })),
      new Client(app.url).get('/api/session'),
    ]),
  );
  assert.ok(replies.ms < BOUND_MS, `answered after ${Math.round(replies.ms)} ms; Redis sleeps 4000 ms, bound ${BOUND_MS} ms`);
  replies.value.forEach((reply, i) => assertUnavailable(reply, `request ${i}`));
  const ready = await timed(() => app.app.inject({ method: 'GET', url: '/ready' }));
  assert.equal(ready.value.statusCode, 503);
  assert.ok(ready.ms < BOUND_MS);

  assert.equal(await sleeping, 'OK');
  await eventually('requests after the sleep', 3000, async () => (await clients[0]!.get('/api/session')).status === 200);
  for (const client of clients) {
    assert.equal((await client.put('/api/name', { name: 'after' })).status, 200);
    assert.equal((await client.get('/api/session')).body.name, 'after');
  }
});

/**
 * Fills Redis with keys under `prefix` until it refuses even a tiny write (maxmemory +
 * noeviction): big keys first, then smaller ones, since a refused big write frees its own buffer.
 * Then holds it full: the limit drops 1 MB below what is used, so the few KB a freed client
 * buffer gives back cannot let one write through by luck (a flake CI once hit).
 */
async function fillUntilFull(server: RedisServer, prefix: string): Promise<void> {
  const filler = server.client({ maxRetriesPerRequest: 0 });
  let i = 0;
  for (const size of [100 * 1024, 10 * 1024, 1024, 100, 10]) {
    const blob = 'x'.repeat(size);
    for (let n = 0; ; n++) {
      assert.ok(n < 1000, 'Redis never reached maxmemory');
      try {
        await filler.set(`${prefix}fill:${i++}`, blob);
      } catch (error) {
        assert.match(String(error), /OOM/);
        break;
      }
    }
  }
  const used = Number(/used_memory:(\d+)/.exec(await filler.info('memory'))?.[1]);
  assert.ok(used > 2 * 1024 * 1024, `Redis full at ${used} bytes`);
  await filler.config('SET', 'maxmemory', String(used - 1024 * 1024));
}

/** Deletes the fill and gives the limit back: Redis has room again. */
async function emptyFill(server: RedisServer, prefix: string, maxmemory = '3mb'): Promise<void> {
  const client = server.client();
  const keys = await client.keys(`${prefix}fill:*`);
  if (keys.length > 0) await client.del(...keys);
  await client.config('SET', 'maxmemory', maxmemory);
}

test('maxmemory reached (noeviction): writes 503 with nothing acknowledged, reads still 200', async (t) => {
  const { server, app } = await withServerAndApp(t, ['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction'], (s) => poolOverrides(s));
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);

  await fillUntilFull(server, app.prefix);

  assertUnavailable(await alice.put('/api/name', { name: 'Mallory' }), 'PUT /api/name');
  assertUnavailable(await alice.post('/api/basket/items', { sku: 'cake', qty: 1 }), 'POST /api/basket/items');
  const newcomer = new Client(app.url);
  const created = await newcomer.get('/api/session');
  assertUnavailable(created, 'a new session');
  assert.equal(created.setCookies.length, 0);

  const view = await alice.get('/api/session');
  assert.equal(view.status, 200);
  assert.equal(view.body.name, 'Alice', 'the refused write left the stored value');
  assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 1 }]);
  assert.deepEqual((await alice.get('/api/basket')).body, { items: [{ sku: 'tea', qty: 1 }] });

  await emptyFill(server, app.prefix);
  assert.equal((await alice.put('/api/name', { name: 'Alice 2' })).status, 200);
  assert.equal((await alice.get('/api/session')).body.name, 'Alice 2');
});

test('READONLY (the server became a replica): writes 503 with nothing acknowledged; writable again: 200 without a restart', async (t) => {
  const { server, app } = await withServerAndApp(t, [], (s) => poolOverrides(s));
  const master = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0'] });
  t.after(() => master.stop());
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);

  // As a failover does to an old master: it now replicates another server and refuses writes.
  await master.client().set('unrelated', '1');
  await server.process.command(['REPLICAOF', '127.0.0.1', String(master.port)]);
  await eventually('the replica in sync', 5000, async () => (await server.client().get('unrelated')) === '1');
  const refused = await new Client(app.url).put('/api/name', { name: 'Mallory' });
  assertUnavailable(refused, 'a write on a read-only replica');
  assert.match(refused.body.error.message, /read-only replica/);
  assert.doesNotMatch(refused.body.error.message, /READONLY You can't write/, 'Redis\'s own text stays in the log');
  assert.equal(refused.setCookies.length, 0);

  await server.process.command(['REPLICAOF', 'NO', 'ONE']);
  const bob = new Client(app.url);
  assert.equal((await bob.put('/api/name', { name: 'Bob' })).status, 200);
  assert.equal((await bob.get('/api/session')).body.name, 'Bob');
});

test('persist = after_response: a failed persist is logged and counted in /metrics', async (t) => {
  const { server, app } = await withServerAndApp(t, ['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction'], (s) => ({
    ...poolOverrides(s),
    session: { persist: 'after_response' },
  }));
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  await eventually('the first persist', 2000, async () => (await alice.get('/api/session')).body.name === 'Alice');
  assert.equal(await failures(alice), 0);

  await fillUntilFull(server, app.prefix);
  // The reply goes first (documented trade-off of after_response); the write then fails.
  assert.equal((await alice.put('/api/name', { name: 'Mallory' })).status, 200);
  await eventually('the failure counted', 3000, async () => (await failures(alice)) === 1);
  assert.equal((await alice.get('/api/session')).body.name, 'Alice', 'nothing was stored');
  await emptyFill(server, app.prefix);
});

async function failures(client: Client): Promise<number> {
  const reply = await client.get('/metrics');
  assert.equal(reply.status, 200);
  const line = String(reply.body).split('\n').find((l) => l.startsWith('keepsake_session_persist_failures_total '));
  assert.ok(line, 'persist failures metric present');
  return Number(line.split(' ')[1]);
}

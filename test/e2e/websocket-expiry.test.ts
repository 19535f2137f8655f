/**
 * Sockets of a session that Redis expired are closed with 4401, like a logout (docs/websocket.md,
 * "Expiry"); a login's rename and a session kept in use by HTTP never close them. The app runs
 * with cookie_lifespan = 4 s, so the expiry sweep runs every second.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector, sleep } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

/** cookie_lifespan in seconds (the sweep runs every quarter of it). */
const LIFESPAN_S = 4;
const SWEEP_MS = (LIFESPAN_S * 1000) / 4;
/** Generous: the TTL, a sweep, the confirmation and one more sweep take about 7 s. */
const CLOSE_WITHIN_MS = 15_000;

const redis = inspector();
const sockets: WsClient[] = [];
let app: TestApp;

/** A visitor with a stored, named session (and its cookie). */
async function visitor(name: string): Promise<Client> {
  const client = new Client(app.url);
  assert.equal((await client.put('/api/name', { name })).status, 200);
  return client;
}

async function openWs(client: Client): Promise<WsClient> {
  const socket = await WsClient.open(`${app.url}/ws`, { cookie: client.cookieHeader });
  sockets.push(socket);
  await socket.nextOfType('hello');
  return socket;
}

/** The socket answers a whoami (it is open and served), and what it shows. */
async function whoami(socket: WsClient): Promise<any> {
  socket.send({ type: 'whoami' });
  return socket.nextOfType('whoami', 2000);
}

before(async () => {
  app = await startApp({ session: { key_prefix: testPrefix('ws-expiry'), cookie_lifespan: LIFESPAN_S } });
});

after(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  if (app !== undefined) {
    await app.close();
    await dropPrefix(redis, app.prefix);
  }
  redis.disconnect();
});

describe('expiry closes the sockets of the session', { concurrency: true }, () => {
  test('a session left idle past cookie_lifespan closes its socket with 4401', async () => {
    const client = await visitor('Ida');
    const id = client.sessionId()!;
    const socket = await openWs(client);
    assert.equal((await whoami(socket)).name, 'Ida');
    // No further HTTP request: Redis expires the key, and the socket hears of it.
    const closed = await socket.closedWithin(CLOSE_WITHIN_MS);
    assert.deepEqual(closed, { code: 4401, reason: 'session ended' });
    assert.equal(await redis.exists(app.prefix + id), 0, 'closed because Redis expired the session');
  });

  test('logins that rename the session while a socket is open keep it open: it follows the new id', async () => {
    const client = await visitor('Lin');
    const first = client.sessionId()!;
    const socket = await openWs(client);
    // Back-to-back logins for several sweep periods: each moves the key to a new id, and a sweep
    // may well find the old key missing before the rename's notice arrives.
    const until = Date.now() + 4 * SWEEP_MS;
    let logins = 0;
    while (Date.now() < until) {
      assert.equal((await client.post('/api/login', { username: `lin${logins++ % 2}` })).status, 200);
      await sleep(20);
    }
    const last = client.sessionId()!;
    assert.notEqual(last, first);
    // The confirmation delay and one more sweep after the last rename (a wrong close would have
    // happened by then), still 2 s before the new id's TTL runs out on a slow machine.
    await sleep(1000 + SWEEP_MS);
    assert.equal((await client.get('/api/session')).body.authenticated, true);
    assert.ok(socket.open, `the socket stayed open across ${logins} logins`);
    const seen = await whoami(socket);
    assert.equal(seen.authenticated, true);
    assert.equal(seen.user, `lin${(logins - 1) % 2}`);
    assert.equal(seen.name, 'Lin');
    // It follows the new id all the way: once that one expires, the socket is closed.
    assert.equal((await socket.closedWithin(CLOSE_WITHIN_MS)).code, 4401);
    assert.equal(await redis.exists(app.prefix + last), 0);
  });

  test('a session kept in use by HTTP keeps its socket open; an idle one on the same node is closed', async () => {
    const busy = await visitor('Bea');
    const idle = await visitor('Ivo');
    const busySocket = await openWs(busy);
    const idleSocket = await openWs(idle);
    const idleClosed = idleSocket.closedWithin(CLOSE_WITHIN_MS);
    // A request every 700 ms (well under cookie_lifespan) for 10 sweep periods, past the idle one's end.
    const until = Date.now() + 10 * SWEEP_MS;
    while (Date.now() < until) {
      assert.equal((await busy.get('/api/session')).body.name, 'Bea');
      await sleep(700);
    }
    assert.equal((await idleClosed).code, 4401, 'the idle session’s socket was closed');
    assert.ok(busySocket.open, 'the busy session’s socket is still open');
    assert.equal((await whoami(busySocket)).name, 'Bea');
  });
});

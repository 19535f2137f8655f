/**
 * A socket does not outlive its session's absolute_lifespan: however active the visitor, the
 * session ends absolute_lifespan after creation and its sockets are closed with 4401.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

const ABSOLUTE_S = 3;
/** cookie_lifespan 4 s: the expiry sweep runs every second. */
const LIFESPAN_S = 4;

const redis = inspector();
let app: TestApp | undefined;
let socket: WsClient | undefined;

after(async () => {
  await socket?.close();
  if (app !== undefined) {
    await app.close();
    await dropPrefix(redis, app.prefix);
  }
  redis.disconnect();
});

test('an active session reaching absolute_lifespan closes its socket with 4401, not before', async () => {
  app = await startApp({ session: { key_prefix: testPrefix('ws-absolute'), cookie_lifespan: LIFESPAN_S, absolute_lifespan: ABSOLUTE_S } });
  const client = new Client(app.url);
  const created = Date.now();
  assert.equal((await client.put('/api/name', { name: 'Busy' })).status, 200);
  socket = await WsClient.open(`${app.url}/ws`, { cookie: client.cookieHeader });
  await socket.nextOfType('hello', 5000);

  // Activity every 300 ms keeps the idle timeout far away; only the absolute end remains.
  const closed = socket.closed.then((how) => ({ ...how, at: Date.now() - created }));
  let open = true;
  void closed.then(() => (open = false));
  while (open && Date.now() - created < 15_000) {
    await client.get('/api/session');
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const how = await closed;
  assert.equal(how.code, 4401);
  assert.ok(how.at >= ABSOLUTE_S * 1000 - 100, `closed ${how.at} ms after creation, before absolute_lifespan (${ABSOLUTE_S} s)`);
  assert.ok(how.at < ABSOLUTE_S * 1000 + 6000, `closed ${how.at} ms after creation; absolute_lifespan is ${ABSOLUTE_S} s`);
});

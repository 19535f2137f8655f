// GET /metrics: Prometheus text from one registry per app, counting what users do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { WsClient } from '../support/ws-client.js';

/** `name{labels} value` lines of a scrape, by series (name plus labels as printed). */
async function scrape(url: string): Promise<{ text: string; value(series: string): number | undefined }> {
  const reply = await new Client(url).get('/metrics');
  assert.equal(reply.status, 200);
  assert.match(reply.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = String(reply.body);
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { text, value: (series) => values.get(series) };
}

test('metric names cover requests, sessions, persists, pools and sockets', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const { text } = await scrape(app.url);
  const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
  for (const word of ['request', 'session', 'persist', 'pool', 'socket']) {
    assert.ok(names.some((name) => name.includes(word)), `a metric name contains '${word}' (have ${names.join(', ')})`);
  }
  for (const name of [
    'keepsake_http_requests_total',
    'keepsake_http_request_duration_seconds',
    'keepsake_sessions_started_total',
    'keepsake_session_persists_total',
    'keepsake_session_persist_failures_total',
    'keepsake_session_persist_duration_seconds',
    'keepsake_redis_pool_size',
    'keepsake_redis_pool_borrowed',
    'keepsake_redis_pool_pending',
    'keepsake_websocket_open_sockets',
    'keepsake_pubsub_reconnects_total',
  ]) {
    assert.ok(names.includes(name), `${name} is exported`);
  }
});

test('counts requests by route and status, sessions started and persisted, pool size and open sockets', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const before = await scrape(app.url);
  assert.equal(before.value('keepsake_redis_pool_size{pool="default"}') ?? 0, 0, 'no connection before a session starts');
  assert.equal(before.value('keepsake_websocket_open_sockets'), 0);

  const client = new Client(app.url);
  for (let i = 0; i < 3; i++) assert.equal((await client.get('/health')).status, 200);
  assert.equal((await client.get('/no/such/route')).status, 404);
  assert.equal((await client.put('/api/name', { name: 'Ada' })).status, 200); // created
  assert.equal((await client.get('/api/session')).status, 200); // existing, unchanged: no persist
  assert.equal((await client.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
  const socket = await WsClient.open(`${app.url}/ws`, { cookie: client.cookieHeader });
  t.after(() => socket.socket.terminate());
  await socket.next((message) => message.type === 'hello');

  const after = await scrape(app.url);
  assert.equal(after.value('keepsake_http_requests_total{method="GET",route="/health",status="200"}'), 3);
  assert.equal(after.value('keepsake_http_requests_total{method="GET",route="(unmatched)",status="404"}'), 1, 'unknown URLs share one label');
  assert.equal(after.value('keepsake_http_requests_total{method="PUT",route="/api/name",status="200"}'), 1);
  assert.equal(after.value('keepsake_http_requests_total{method="POST",route="/api/basket/items",status="201"}'), 1);
  assert.equal(after.value('keepsake_http_request_duration_seconds_count{method="GET",route="/health",status="200"}'), 3);
  assert.equal(after.value('keepsake_sessions_started_total{created="true"}'), 1);
  assert.equal(after.value('keepsake_sessions_started_total{created="false"}'), 2);
  // The PUT's persist (creating the session) and the basket add's update() write.
  assert.equal(after.value('keepsake_session_persists_total'), 2);
  assert.equal(after.value('keepsake_session_persist_duration_seconds_count'), after.value('keepsake_session_persists_total'));
  assert.equal(after.value('keepsake_session_persist_failures_total'), 0);
  assert.ok(after.value('keepsake_redis_pool_size{pool="default"}')! >= 1);
  assert.equal(after.value('keepsake_redis_pool_pending{pool="default"}'), 0);
  assert.equal(after.value('keepsake_websocket_open_sockets'), 1);
  assert.equal(after.value('keepsake_pubsub_reconnects_total'), 0);
});

test('two apps in one process keep separate registries', async (t) => {
  const [a, b] = await Promise.all([startApp(), startApp()]);
  t.after(() => Promise.all([a.close(), b.close()]));
  for (let i = 0; i < 2; i++) await new Client(a.url).get('/health');
  await new Client(b.url).get('/health');
  assert.equal((await scrape(a.url)).value('keepsake_http_requests_total{method="GET",route="/health",status="200"}'), 2);
  assert.equal((await scrape(b.url)).value('keepsake_http_requests_total{method="GET",route="/health",status="200"}'), 1);
});

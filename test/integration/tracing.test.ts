/**
 * keepsake's diagnostics channels as an APM sees them: one span per load, persist, update and
 * notice, each with the session's hashed id and never the id itself; and the metrics that
 * go with them (load latency, rejected cookies, large-session cache) on /metrics.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, test } from 'node:test';
import { KEEPSAKE_CHANNELS, sessionHash } from '../../src/index.js';
import { startApp, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector, sessionCookie } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

interface Span {
  channel: string;
  events: string[];
  context: Record<string, unknown>;
}

const spans: Span[] = [];
const unsubscribers: (() => void)[] = [];
let demo: TestApp;
const redis = inspector();

before(async () => {
  for (const [name, channelName] of Object.entries(KEEPSAKE_CHANNELS)) {
    const channel = diagnostics.tracingChannel(channelName);
    const seen = new WeakMap<object, Span>();
    const record = (event: string) => (context: object) => {
      let span = seen.get(context);
      if (span === undefined) {
        span = { channel: name, events: [], context: context as Record<string, unknown> };
        seen.set(context, span);
        spans.push(span);
      }
      span.events.push(event);
    };
    const handlers = { start: record('start'), end: record('end'), asyncStart: record('asyncStart'), asyncEnd: record('asyncEnd'), error: record('error') };
    channel.subscribe(handlers);
    unsubscribers.push(() => channel.unsubscribe(handlers));
  }
  demo = await startApp();
});

after(async () => {
  for (const unsubscribe of unsubscribers) unsubscribe();
  await demo?.close();
  await dropPrefix(redis, demo.prefix);
  redis.disconnect();
});

test('a span per load, persist, update and notice, with the hashed id and never the id', async () => {
  const client = new Client(demo.url);
  const created = await client.request('GET', '/api/session'); // creates: a persist
  const id = sessionCookie(created.setCookies)!.id;
  const socket = await WsClient.open(`${demo.url}/ws`, { cookie: client.cookieHeader });
  await socket.next((message) => message.type === 'hello');
  spans.length = 0;

  assert.equal((await client.request('PUT', '/api/name', { name: 'Ada' })).status, 200); // load + persist
  assert.equal((await client.request('POST', '/api/basket/items', { sku: 'tea', qty: 1 })).status, 201); // load + update
  await socket.next((message) => message.type === 'session', 2000);
  await eventually('the notice span', 2000, async () => spans.some((span) => span.channel === 'notice'));
  socket.socket.close();

  const hash = sessionHash(id);
  assert.match(hash, /^[0-9a-f]{16}$/);
  for (const kind of ['load', 'persist', 'update', 'notice']) {
    const mine = spans.filter((span) => span.channel === kind && span.context.sessionHash === hash);
    assert.ok(mine.length >= 1, `no ${kind} span for the session: ${JSON.stringify(spans.map((span) => [span.channel, span.context.sessionHash]))}`);
    const span = mine[0]!;
    assert.deepEqual(span.events.slice(0, 2), ['start', 'end'], `${kind}: start and end`);
    if (kind !== 'notice') assert.ok(span.events.includes('asyncEnd'), `${kind}: asyncEnd when the promise settles`);
  }
  const update = spans.find((span) => span.channel === 'update')!;
  assert.equal(update.context.key, 'basket');
  assert.equal(update.context.attempts, 1, 'no contention: one compare-and-set');
  assert.equal(spans.filter((span) => span.channel === 'load' && span.context.sessionHash === hash).length, 2, 'one load per request');
  for (const span of spans) {
    const { result: _result, ...context } = span.context; // the load's result is the stored data, not the id
    assert.ok(!JSON.stringify(context).includes(id), `${span.channel} span context holds the session id`);
    assert.ok(!Object.values(span.context).some((value) => value === id));
  }
});

test('/metrics counts loads with their latency, rejected cookies, update retries and conflicts, and the large-session cache', async () => {
  const tampered = await fetch(`${demo.url}/api/session`, { headers: { cookie: 'dmsession=abc.def' } });
  assert.equal(tampered.status, 200);
  const text = await (await fetch(`${demo.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  assert.ok(value('keepsake_session_load_duration_seconds_count') >= 2, 'loads counted');
  assert.ok(value('keepsake_session_load_duration_seconds_sum') > 0);
  assert.equal(value('keepsake_session_cookies_rejected_total'), 1);
  assert.equal(value('keepsake_session_update_retries_total'), 0);
  assert.equal(value('keepsake_session_update_conflicts_total'), 0);
  assert.equal(value('keepsake_session_cache_hit_ratio'), 0);
  assert.match(text, /^keepsake_session_cache_lookups_total\{result="hit"\} 0$/m);
});

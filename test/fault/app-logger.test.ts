/**
 * One logger: with Redis stopped and restarted under a running app, keepsake's lines (pool lost
 * and back, notice subscriber lost and resubscribed) arrive in the app's pino stream, once per
 * outage, at error/info level, and nothing is written to the console.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../app/build-app.js';
import { testConfig } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

interface Line {
  level: number;
  msg: string;
}

const lines: Line[] = [];
let redis: RedisServer;
let app: FastifyInstance;
let url: string;
const consoleWrites: string[] = [];
const original = { log: console.log, warn: console.warn, error: console.error, info: console.info };

before(async () => {
  redis = await RedisServer.start();
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Line);
      done();
    },
  });
  const config = testConfig({
    session: { secrets: 'app-logger-test-secret-0123456789abcdef', cookie_secure: 'true' },
    redis_connection_pool: { default: { port: String(redis.port), acquire_timeout_ms: '300', command_timeout_ms: '300', connect_timeout_ms: '300' } },
  });
  app = await buildApp(config, { logger: { level: 'info', stream } as never });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  for (const method of ['log', 'warn', 'error', 'info'] as const) console[method] = (...args: unknown[]) => void consoleWrites.push(args.map(String).join(' '));
});

after(async () => {
  Object.assign(console, original);
  await app?.close();
  await redis?.stop();
});

const count = (pattern: RegExp) => lines.filter((line) => pattern.test(line.msg)).length;

test("Redis stopped and restarted: lost and back (pool and notice subscriber) in the app's log, once each, nothing on the console", async () => {
  const client = new Client(url);
  assert.equal((await client.request('GET', '/api/session')).status, 200);
  const socket = await WsClient.open(`${url}/ws`, { cookie: client.cookieHeader });
  await socket.next((message) => message.type === 'hello');

  await redis.kill();
  for (let i = 0; i < 3; i++) assert.equal((await client.request('GET', '/api/session')).status, 503);
  await eventually('pool and subscriber reported lost', 5000, async () => count(/^Redis connection lost \(pool default\)/) === 1 && count(/^session notice subscriber lost/) === 1);

  await redis.restart();
  await eventually('requests succeed again', 10_000, async () => (await client.request('GET', '/api/session')).status === 200);
  await eventually('pool and subscriber reported back', 10_000, async () => count(/^Redis connection back \(pool default\)/) === 1 && count(/^session notice subscriber resubscribed/) === 1);
  socket.socket.close();

  assert.equal(count(/^Redis connection lost/), 1, 'one line per outage, not one per connection or retry');
  assert.equal(lines.find((line) => /^Redis connection lost/.test(line.msg))!.level, 50);
  assert.equal(lines.find((line) => /^Redis connection back/.test(line.msg))!.level, 30);
  assert.equal(lines.find((line) => /^session notice subscriber lost/.test(line.msg))!.level, 50);
  assert.equal(lines.find((line) => /^session notice subscriber resubscribed/.test(line.msg))!.level, 30);
  assert.deepEqual(consoleWrites, [], 'nothing on the console');
});

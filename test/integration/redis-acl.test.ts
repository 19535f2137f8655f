/**
 * The Redis ACL of docs/config.md is complete: the demo app, connected as a user with exactly
 * those permissions, serves sessions, logins, baskets and live sockets without one
 * NOPERM (Redis counts every refused call in `ACL LOG`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startApp, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { WsClient } from '../support/ws-client.js';

let redis: RedisServer;
let demo: TestApp;
const password = 'acl-test-password-0123456789';

/** The documented `ACL SETUSER` line, for this test's user, password and key prefix. */
function documentedRules(prefix: string): string[] {
  const page = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8');
  const block = /```\nACL SETUSER ([^`]+)```/.exec(page);
  assert.ok(block !== null, 'docs/config.md shows an ACL SETUSER line');
  return block[1]!
    .replace(/\\\n/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .slice(1) // the user name
    .map((rule) => rule.replace('>PASSWORD', `>${password}`).replace(/^([~&])keepsake:\*$/, `$1${prefix}*`));
}

before(async () => {
  redis = await RedisServer.start();
  const prefix = `acl:${process.pid}:`;
  const admin = redis.client();
  await admin.call('ACL', 'SETUSER', 'keepsake', 'reset', ...documentedRules(prefix));
  await admin.quit();
  demo = await startApp({ session: { key_prefix: prefix }, redis_connection_pool: { default: { port: String(redis.port), username: 'keepsake', password } } });
});

after(async () => {
  await demo?.close();
  await redis?.stop();
});

test('the demo app runs as the documented ACL user without a refused command', async () => {
  const alice = new Client(demo.url);
  assert.equal((await alice.request('GET', '/api/session')).status, 200);
  const socket = await WsClient.open(`${demo.url}/ws`, { cookie: alice.cookieHeader });
  await socket.next((message) => message.type === 'hello');
  assert.equal((await alice.request('PUT', '/api/name', { name: 'Alice' })).status, 200);
  await socket.next((message) => message.type === 'session' && message.name === 'Alice', 2000);
  assert.equal((await alice.request('POST', '/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  assert.equal((await alice.request('POST', '/api/login', { username: 'alice' })).status, 200);
  assert.equal((await alice.request('GET', '/ready')).status, 200);
  assert.equal((await alice.request('POST', '/api/logout')).status, 200);
  assert.equal((await socket.closed).code, 4401);

  const admin = redis.client();
  const denied = (await admin.call('ACL', 'LOG')) as unknown[];
  await admin.quit();
  assert.deepEqual(denied, [], `commands refused to the documented user:\n${JSON.stringify(denied)}`);
});

// Redis's own error text (addresses, WRONGPASS, OOM) stays in the log: the reply carries
// keepsake's message. Against throwaway redis-servers (a password, a memory limit) and a port
// with nothing listening.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../app/build-app.js';
import { testConfig } from '../support/app-server.js';
import { Client, type Reply } from '../support/http-client.js';
import { RedisServer, freePort } from '../support/redis-server.js';

/** The demo app with fastify's logger writing into `lines`. */
async function appLogging(t: { after(fn: () => Promise<void>): void }, pool: Record<string, string>): Promise<{ url: string; log: () => string }> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const config = testConfig({ redis_connection_pool: { default: { acquire_timeout_ms: '500', command_timeout_ms: '1000', connect_timeout_ms: '500', ...pool } } });
  const app = await buildApp(config, { logger: { level: 'warn', stream } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, log: () => lines.join('') };
}

function assertOwnMessage(reply: Reply, raw: RegExp): void {
  assert.equal(reply.status, 503, `body ${JSON.stringify(reply.body)}`);
  assert.equal(reply.body.error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
  assert.match(reply.body.error.message, /^Redis \(?pool 'default'/);
  assert.doesNotMatch(JSON.stringify(reply.body), raw);
}

test('a refused connection: the body names no address or errno; the log does', async (t) => {
  const port = await freePort();
  const { url, log } = await appLogging(t, { port: String(port) });
  const reply = await new Client(url).put('/api/name', { name: 'Alice' });
  assertOwnMessage(reply, new RegExp(`ECONNREFUSED|${port}`));
  assert.match(reply.body.error.message, /could not be reached/);
  assert.match(log(), new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
});

test('a wrong password: the body has no WRONGPASS (nor the password); the log has WRONGPASS', async (t) => {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  await server.client().acl('SETUSER', 'keepsake', 'on', '>the-right-password-of-this-redis', '~*', '&*', '+@all');
  const { url, log } = await appLogging(t, { port: String(server.port), username: 'keepsake', password: 'a-wrong-password-0123456789' });
  const reply = await new Client(url).put('/api/name', { name: 'Alice' });
  assertOwnMessage(reply, /WRONGPASS|invalid username-password|a-wrong-password|the-right-password/i);
  assert.match(reply.body.error.message, /refused keepsake's credentials/);
  assert.match(log(), /WRONGPASS/);
  assert.doesNotMatch(log(), /a-wrong-password|the-right-password/);
});

test('Redis out of memory: the body has no OOM text; the log has it', async (t) => {
  const server = await RedisServer.start({ args: ['--maxmemory-policy', 'noeviction'] });
  t.after(() => server.stop());
  const { url, log } = await appLogging(t, { port: String(server.port) });
  const alice = new Client(url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  await server.client().config('SET', 'maxmemory', '1');
  const reply = await alice.put('/api/name', { name: 'Alice 2' });
  assertOwnMessage(reply, /OOM|used memory|'maxmemory'/);
  assert.match(reply.body.error.message, /out of memory/);
  assert.match(log(), /OOM command not allowed/);
});

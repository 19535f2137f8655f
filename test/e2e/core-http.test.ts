/**
 * The core guarantees over real HTTP against a throwaway redis-server whose command counts we read.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sign } from 'cookie-signature';
import type { Redis } from 'ioredis';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';

const SECRET = 'dev-only-secret-change-me-0123456789abcdef';

let redis: RedisServer;
let app: TestApp;
let inspect: Redis;

/** Commands the app sent to Redis while `action` ran (by name). */
async function commandsDuring(action: () => Promise<unknown>): Promise<Map<string, number>> {
  const before = await redis.commandStats();
  await action();
  const after = await redis.commandStats();
  const delta = new Map<string, number>();
  for (const [name, calls] of after) {
    const diff = calls - (before.get(name) ?? 0);
    if (diff > 0) delta.set(name, diff);
  }
  return delta;
}

/** Every FCALL the app sends while `action` runs, with its arguments, seen through MONITOR. */
async function fcallsDuring(action: () => Promise<unknown>): Promise<string[][]> {
  const signaller = redis.client();
  await signaller.ping();
  const monitor = await redis.client().monitor();
  const seen: string[][] = [];
  const marker = `end-of-window-${Date.now()}`;
  const ended = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) resolve();
      else if (args[0]?.toLowerCase() === 'fcall') seen.push(args);
    });
  });
  try {
    await action();
    await signaller.echo(marker); // MONITOR lists commands in execution order: every FCALL of action is in
    await ended;
  } finally {
    monitor.disconnect();
    signaller.disconnect();
  }
  return seen;
}

before(async () => {
  redis = await RedisServer.start();
  inspect = redis.client();
  app = await startApp({ redis_connection_pool: { default: { port: String(redis.port) } } });
});

after(async () => {
  await app?.close();
  await redis?.stop();
});

describe('lazy: a route that never starts a session', () => {
  test('GET /health sends no Redis command and sets no cookie, even with a session cookie', async () => {
    const client = new Client(app.url);
    await client.get('/api/session');
    assert.ok(client.cookieHeader);
    const commands = await commandsDuring(async () => {
      for (let i = 0; i < 5; i++) {
        const reply = await client.get('/health');
        assert.equal(reply.status, 200);
        assert.deepEqual(reply.body, { status: 'ok' });
        assert.deepEqual(reply.setCookies, []);
      }
    });
    assert.deepEqual([...commands], []);
  });
});

describe('start → modify → persist', () => {
  test('a new visitor gets a signed cookie with the configured attributes and a stored session', async () => {
    const client = new Client(app.url);
    const reply = await client.get('/api/session');
    assert.equal(reply.status, 200);
    assert.equal(reply.body.authenticated, false);
    assert.match(reply.body.user, /^anon-[A-Za-z0-9_-]+$/);
    assert.equal(reply.body.name, null);
    assert.deepEqual(reply.body.basket, []);
    assert.equal(reply.setCookies.length, 1);
    const [cookie] = reply.setCookies;
    assert.match(cookie!, /^dmsession=[^;]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/);
    const id = client.sessionId()!;
    assert.equal(decodeURIComponent(client.cookies.get('dmsession')!), sign(id, SECRET));
    // The cookie always names a session the store knows: metadata only (and the id of the write
    // that made it, m:v), with its TTL (an empty session's: empty_session_lifespan, 600 s by
    // default, until its first data).
    const key = `${app.prefix}${id}`;
    assert.deepEqual((await inspect.hkeys(key)).sort(), ['m:a', 'm:c', 'm:v']);
    const ttl = await inspect.pttl(key);
    assert.ok(ttl > 590_000 && ttl <= 600_000, `TTL ${ttl}`);
  });

  test('an existing session: one round trip to load, no data written, TTL refreshed, no new cookie', async () => {
    const client = new Client(app.url);
    await client.put('/api/name', { name: 'Ada' });
    const key = `${app.prefix}${client.sessionId()}`;
    await inspect.pexpire(key, 50_000);
    const commands = await commandsDuring(async () => {
      const reply = await client.get('/api/session');
      assert.equal(reply.body.name, 'Ada');
      assert.deepEqual(reply.setCookies, []);
    });
    const fcalls = await fcallsDuring(() => client.get('/api/session'));
    // HGETALL + PEXPIRE are sent in the same tick: one round trip; nothing else.
    assert.deepEqual(Object.fromEntries(commands), { hgetall: 1, pexpire: 1 });
    assert.deepEqual(fcalls, []);
    assert.ok((await inspect.pttl(key)) > 86_000_000, 'the TTL is refreshed on use');
  });

  test('only the fields whose bytes changed are written', async () => {
    const client = new Client(app.url);
    await client.put('/api/name', { name: 'Ada' });
    await client.post('/api/basket/items', { sku: 'apple', qty: 1 });
    const fcalls = await fcallsDuring(() => client.put('/api/name', { name: 'Grace' }));
    assert.equal(fcalls.length, 1);
    const args = fcalls[0]!;
    const fields = args.filter((arg) => /^[dmf]:/.test(arg));
    assert.deepEqual(fields, ['d:name'], `written fields: ${fields.join(', ')}`);
    // The same name again: bytes equal, nothing written.
    assert.deepEqual(await fcallsDuring(() => client.put('/api/name', { name: 'Grace' })), []);
  });

  test('every key keepsake writes has a TTL', async () => {
    const client = new Client(app.url);
    await client.put('/api/name', { name: 'Ada' });
    await client.post('/api/basket/items', { sku: 'pear', qty: 2 });
    const keys = await inspect.keys(`${app.prefix}*`);
    assert.ok(keys.length > 0);
    for (const key of keys) assert.ok((await inspect.pttl(key)) > 0, `${key} has no TTL`);
  });

  test('read-your-writes: the next request, on a new connection, sees the write', async () => {
    const client = new Client(app.url);
    for (let i = 0; i < 20; i++) {
      const put = await client.put('/api/name', { name: `name-${i}` }, { connection: 'close' });
      assert.equal(put.status, 200);
      const read = await client.get('/api/session', { connection: 'close' });
      assert.equal(read.body.name, `name-${i}`);
    }
  });

  test('the basket: add, add the same sku, remove, 404 for a missing sku', async () => {
    const client = new Client(app.url);
    assert.deepEqual((await client.post('/api/basket/items', { sku: 'apple', qty: 2 })).body, { items: [{ sku: 'apple', qty: 2 }] });
    const added = await client.post('/api/basket/items', { sku: 'apple', qty: 3 });
    assert.equal(added.status, 201);
    assert.deepEqual(added.body, { items: [{ sku: 'apple', qty: 5 }] });
    await client.post('/api/basket/items', { sku: 'pear', qty: 1 });
    assert.deepEqual((await client.get('/api/basket')).body, { items: [{ sku: 'apple', qty: 5 }, { sku: 'pear', qty: 1 }] });
    const removed = await client.delete('/api/basket/items/apple');
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.body, { items: [{ sku: 'pear', qty: 1 }] });
    const missing = await client.delete('/api/basket/items/apple');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ERR_NOT_FOUND');
  });

  test('a qty past 999 is refused with 400 and the basket is unchanged', async () => {
    const client = new Client(app.url);
    await client.post('/api/basket/items', { sku: 'apple', qty: 990 });
    const refused = await client.post('/api/basket/items', { sku: 'apple', qty: 10 });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'ERR_VALIDATION');
    assert.deepEqual((await client.get('/api/basket')).body, { items: [{ sku: 'apple', qty: 990 }] });
  });
});

describe('bad cookies are a fresh session, never an error, never an adopted id', () => {
  const unknownId = 'A'.repeat(43);
  const cases: Record<string, string> = {
    'tampered signature': '',
    'unsigned id': '',
    'signed with another secret': `dmsession=${encodeURIComponent(sign(unknownId, 'x'.repeat(32)))}`,
    'validly signed but unknown id': `dmsession=${encodeURIComponent(sign(unknownId, SECRET))}`,
    'not URL-decodable': 'dmsession=%E0%A4%A',
    'oversized': `dmsession=${'a'.repeat(8000)}`,
    'empty': 'dmsession=',
  };

  for (const [name, fixed] of Object.entries(cases)) {
    test(name, async () => {
      let header = fixed;
      if (name === 'tampered signature' || name === 'unsigned id') {
        const owner = new Client(app.url);
        await owner.put('/api/name', { name: 'Owner' });
        const id = owner.sessionId()!;
        const signed = sign(id, SECRET);
        header = name === 'unsigned id' ? `dmsession=${id}` : `dmsession=${encodeURIComponent(signed.slice(0, -2) + (signed.endsWith('AA') ? 'BB' : 'AA'))}`;
      }
      const reply = await new Client(app.url).get('/api/session', { cookie: header });
      assert.equal(reply.status, 200);
      assert.equal(reply.body.name, null, 'no data of another session');
      assert.equal(reply.setCookies.length, 1);
      const newId = decodeURIComponent(reply.setCookies[0]!.split(';')[0]!.slice('dmsession='.length)).split('.')[0];
      assert.notEqual(newId, unknownId);
      assert.ok(!header.includes(newId!), 'the id is new');
      assert.equal(await inspect.exists(`${app.prefix}${unknownId}`), 0, 'an unknown id is never stored');
    });
  }
});

describe('bad bodies', () => {
  const cases: Array<[string, string, unknown, number, string]> = [
    ['name missing', '/api/name', {}, 400, 'ERR_VALIDATION'],
    ['name empty', '/api/name', { name: '' }, 400, 'ERR_VALIDATION'],
    ['name too long', '/api/name', { name: 'x'.repeat(65) }, 400, 'ERR_VALIDATION'],
    ['name not a string', '/api/name', { name: 5 }, 400, 'ERR_VALIDATION'],
    ['qty zero', '/api/basket/items', { sku: 'a', qty: 0 }, 400, 'ERR_VALIDATION'],
    ['qty fractional', '/api/basket/items', { sku: 'a', qty: 1.5 }, 400, 'ERR_VALIDATION'],
    ['qty over 999', '/api/basket/items', { sku: 'a', qty: 1000 }, 400, 'ERR_VALIDATION'],
    ['sku too long', '/api/basket/items', { sku: 'x'.repeat(33), qty: 1 }, 400, 'ERR_VALIDATION'],
    ['username with capitals', '/api/login', { username: 'Alice' }, 400, 'ERR_VALIDATION'],
    ['unparsable JSON', '/api/name', '{"name":', 400, 'ERR_VALIDATION'],
  ];
  for (const [name, path, body, status, code] of cases) {
    test(`${name} → ${status} ${code}`, async () => {
      const client = new Client(app.url);
      const reply = await client.request(path === '/api/name' ? 'PUT' : 'POST', path, body);
      assert.equal(reply.status, status);
      assert.equal(reply.body.error.code, code);
      assert.equal(typeof reply.body.error.message, 'string');
    });
  }

  test('fields a route does not read are dropped, never stored', async () => {
    const client = new Client(app.url);
    const added = await client.post('/api/basket/items', { sku: 'tea', qty: 2, price: 3 });
    assert.equal(added.status, 201);
    assert.deepEqual(added.body, { items: [{ sku: 'tea', qty: 2 }] });
    assert.equal((await client.put('/api/name', { name: 'Ada', role: 'admin' })).status, 200);
    const login = await client.post('/api/login', { username: 'ada', password: 'not-checked-by-the-demo' });
    assert.equal(login.status, 200);
    assert.deepEqual(login.body, { user: 'ada', authenticated: true, name: 'Ada', basket: [{ sku: 'tea', qty: 2 }] });
  });

  test('another content type → 415 ERR_UNSUPPORTED_MEDIA_TYPE; unknown route → 404 ERR_NOT_FOUND', async () => {
    const client = new Client(app.url);
    const text = await client.request('PUT', '/api/name', 'name=x', { 'content-type': 'text/plain' });
    assert.equal(text.status, 415);
    assert.equal(text.body.error.code, 'ERR_UNSUPPORTED_MEDIA_TYPE');
    const missing = await client.get('/api/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ERR_NOT_FOUND');
  });
});

describe('a persist that fails never reports success', () => {
  test('Redis refusing writes turns the reply into 503 with Retry-After, and nothing is claimed', async () => {
    // A user that may read and load functions but not FCALL: loads work, every write fails.
    await inspect.call('ACL', 'SETUSER', 'reader', 'on', '>reader-password', '~*', '&*', '+@all', '-fcall');
    const owner = new Client(app.url);
    await owner.put('/api/name', { name: 'Before' });
    // Both nodes share app.prefix: whatever the limited node stored would show up under it.
    const keysBefore = (await inspect.keys(`${app.prefix}*`)).sort();
    assert.ok(keysBefore.includes(`${app.prefix}${owner.sessionId()}`), 'the owner\'s session is where the check looks');
    const limited = await startApp({
      session: { key_prefix: app.prefix },
      redis_connection_pool: { default: { port: String(redis.port), username: 'reader', password: 'reader-password' } },
    });
    try {
      const client = new Client(limited.url);
      client.cookies = new Map(owner.cookies);
      const write = await client.put('/api/name', { name: 'After' });
      assert.equal(write.status, 503);
      assert.equal(write.body.error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
      assert.equal(write.headers.get('retry-after'), '1');
      assert.deepEqual(write.setCookies, []);
      const fresh = await new Client(limited.url).get('/api/session');
      assert.equal(fresh.status, 503, 'a session that could not be created is not handed out');
      assert.deepEqual(fresh.setCookies, []);
      assert.equal((await owner.get('/api/session')).body.name, 'Before');
      assert.deepEqual((await inspect.keys(`${app.prefix}*`)).sort(), keysBefore, 'no session was stored for the failed requests');
    } finally {
      await limited.close();
    }
  });
});

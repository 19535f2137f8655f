/**
 * The demo's `/ws` over real sockets (DEMO-APP.md, "WebSocket /ws"): the session read-only and
 * live, against a throwaway redis-server whose command counts and subscribers we can read.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { commandsDuring as commandsDuringOn, RedisServer } from '../support/redis-server.js';
import { HandshakeRefused, WsClient, type WsOpenOptions } from '../support/ws-client.js';

/** The contract's bound for a push after a change. */
const PUSH_WITHIN_MS = 1000;

let redis: RedisServer;
let inspect: Redis;
let app: TestApp;
const sockets: WsClient[] = [];
const apps: TestApp[] = [];

async function openWs(target: TestApp, options: WsOpenOptions = {}): Promise<WsClient> {
  const socket = await WsClient.open(`${target.url}/ws`, options);
  sockets.push(socket);
  return socket;
}

/** A visitor with a stored session (and its cookie), optionally named. */
async function visitor(target: TestApp = app, name?: string): Promise<Client> {
  const client = new Client(target.url);
  assert.equal((await client.get('/api/session')).status, 200);
  if (name !== undefined) assert.equal((await client.put('/api/name', { name })).status, 200);
  return client;
}

async function startNode(prefix?: string): Promise<TestApp> {
  const node = await startApp({
    redis_connection_pool: { default: { port: String(redis.port) } },
    ...(prefix === undefined ? {} : { session: { key_prefix: prefix } }),
  });
  apps.push(node);
  return node;
}

/** Commands the app sent to Redis while `action` ran, by name. */
const commandsDuring = (action: () => Promise<unknown>) => commandsDuringOn(redis, action);

async function subscribers(channel: string): Promise<number> {
  const reply = (await inspect.pubsub('NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

const view = (message: any) => ({ user: message.user, authenticated: message.authenticated, name: message.name, basket: message.basket });

before(async () => {
  redis = await RedisServer.start();
  inspect = redis.client();
  app = await startNode();
});

after(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await Promise.all(apps.map((node) => node.close()));
  await redis?.stop();
});

describe('the handshake', () => {
  test('a node opens no subscriber before its first socket, and one SUBSCRIBE with it', async () => {
    const channel = `${app.prefix}users`;
    const client = await visitor();
    const sessionChannel = `${app.prefix}${client.sessionId()}`;
    assert.equal(await subscribers(channel), 0, 'HTTP routes alone never subscribe');
    const socket = await openWs(app, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    assert.equal(await subscribers(channel), 1);
    assert.equal(await subscribers(sessionChannel), 1, 'the session’s own channel');
    await openWs(app);
    await openWs(app, { cookie: client.cookieHeader });
    assert.equal(await subscribers(channel), 1, 'one subscriber per node, whatever the number of sockets');
    assert.equal(await subscribers(sessionChannel), 1);
  });

  test('hello carries the view of the cookie’s session', async () => {
    const client = await visitor(app, 'Ada');
    await client.post('/api/basket/items', { sku: 'apple', qty: 2 });
    const http = (await client.get('/api/session')).body;
    const socket = await openWs(app, { cookie: client.cookieHeader });
    const hello = await socket.nextOfType('hello');
    assert.deepEqual(hello, { type: 'hello', ...http });
    assert.deepEqual(view(hello), { user: http.user, authenticated: false, name: 'Ada', basket: [{ sku: 'apple', qty: 2 }] });
    assert.match(hello.user, /^anon-/);
  });

  test('without a session cookie the socket opens with an empty view and a user unique to it', async () => {
    const first = await (await openWs(app)).nextOfType('hello');
    const second = await (await openWs(app, { cookie: 'dmsession=forged.signature' })).nextOfType('hello');
    for (const hello of [first, second]) {
      assert.equal(hello.authenticated, false);
      assert.equal(hello.name, null);
      assert.deepEqual(hello.basket, []);
      assert.match(hello.user, /^anon-./);
    }
    assert.notEqual(first.user, second.user);
  });

  test('a handshake with a session costs one round trip (HGETALL + PEXPIRE), plus a SUBSCRIBE for the node’s first socket of it; without one, none', async () => {
    const client = await visitor(app, 'Ada');
    await (await openWs(app)).nextOfType('hello'); // the node's subscriber is already up
    const first = await commandsDuring(async () => (await openWs(app, { cookie: client.cookieHeader })).nextOfType('hello'));
    assert.deepEqual(first, { subscribe: 1, hgetall: 1, pexpire: 1 }, 'the session’s channel, then the read');
    const withSession = await commandsDuring(async () => (await openWs(app, { cookie: client.cookieHeader })).nextOfType('hello'));
    assert.deepEqual(withSession, { hgetall: 1, pexpire: 1 });
    const without = await commandsDuring(async () => (await openWs(app)).nextOfType('hello'));
    assert.deepEqual(without, {});
    const forged = await commandsDuring(async () => (await openWs(app, { cookie: 'dmsession=x.y' })).nextOfType('hello'));
    assert.deepEqual(forged, {});
  });

  test('Origin: a listed one opens, a foreign one gets 403, none at all opens', async () => {
    const client = await visitor();
    const listed = await openWs(app, { cookie: client.cookieHeader, origin: 'http://127.0.0.1:3000' });
    assert.equal((await listed.nextOfType('hello')).name, null);
    await assert.rejects(openWs(app, { cookie: client.cookieHeader, origin: 'http://evil.example' }), (error: unknown) => {
      assert.ok(error instanceof HandshakeRefused);
      assert.equal(error.status, 403);
      return true;
    });
    await assert.rejects(openWs(app, { origin: 'http://127.0.0.1:3000.evil.example' }), { status: 403 });
    await (await openWs(app, { cookie: client.cookieHeader })).nextOfType('hello');
  });

  test('"*" in ws_allowed_origins allows any Origin', async () => {
    const open = await startApp({ server: { ws_allowed_origins: '*' }, redis_connection_pool: { default: { port: String(redis.port) } } });
    apps.push(open);
    await (await openWs(open, { origin: 'http://anywhere.example' })).nextOfType('hello');
  });

  test('a plain GET /ws is answered 426 with the error shape', async () => {
    const reply = await new Client(app.url).get('/ws');
    assert.equal(reply.status, 426);
    assert.equal(reply.body.error.code, 'ERR_BAD_REQUEST');
  });
});

describe('messages', () => {
  test('whoami answers the session view', async () => {
    const client = await visitor(app, 'Grace');
    const socket = await openWs(app, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    socket.send({ type: 'whoami' });
    const whoami = await socket.nextOfType('whoami');
    assert.deepEqual(whoami, { type: 'whoami', ...(await client.get('/api/session')).body });
  });

  test('rename writes through the read-only view: ERR_SESSION_READ_ONLY, session unchanged, socket open', async () => {
    const client = await visitor(app, 'Ada');
    const id = client.sessionId()!;
    const stored = await inspect.hgetallBuffer(`${app.prefix}${id}`);
    const socket = await openWs(app, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    socket.send({ type: 'rename', name: 'Mallory' });
    const error = await socket.nextOfType('error');
    assert.equal(error.code, 'ERR_SESSION_READ_ONLY');
    assert.equal(typeof error.message, 'string');
    assert.equal((await client.get('/api/session')).body.name, 'Ada');
    assert.deepEqual(await inspect.hgetallBuffer(`${app.prefix}${id}`), stored, 'not a byte changed in Redis');
    assert.ok(socket.open);
    socket.send({ type: 'whoami' });
    assert.equal((await socket.nextOfType('whoami')).name, 'Ada');
  });

  test('rename on a socket without a session also answers ERR_SESSION_READ_ONLY', async () => {
    const socket = await openWs(app);
    await socket.nextOfType('hello');
    socket.send({ type: 'rename', name: 'Mallory' });
    assert.equal((await socket.nextOfType('error')).code, 'ERR_SESSION_READ_ONLY');
    assert.ok(socket.open);
  });

  test('text that is not JSON, an unknown type, a non-object or a binary frame: ERR_BAD_MESSAGE, socket open', async () => {
    const socket = await openWs(app);
    await socket.nextOfType('hello');
    for (const message of ['not json {', JSON.stringify({ type: 'shout' }), '[1,2]', '42', 'null', JSON.stringify({ name: 'no type' }), Buffer.from([1, 2, 3])]) {
      socket.send(message);
      const error = await socket.nextOfType('error');
      assert.equal(error.code, 'ERR_BAD_MESSAGE', `for ${String(message)}`);
    }
    assert.ok(socket.open);
    socket.send({ type: 'whoami' });
    await socket.nextOfType('whoami');
  });

  test('a message of 64 KiB is read; one byte more closes the socket with 1009', async () => {
    const socket = await openWs(app);
    await socket.nextOfType('hello');
    socket.send('x'.repeat(64 * 1024));
    assert.equal((await socket.nextOfType('error')).code, 'ERR_BAD_MESSAGE');
    socket.send(JSON.stringify({ type: 'whoami', pad: 'x'.repeat(64 * 1024) }));
    const closed = await socket.closedWithin(2000);
    assert.equal(closed.code, 1009);
  });
});

describe('live: HTTP changes reach the sockets of the session', () => {
  test('PUT /api/name and a basket add are pushed within a second, to every socket of the session only', async () => {
    const client = await visitor(app, 'Ada');
    const first = await openWs(app, { cookie: client.cookieHeader });
    const second = await openWs(app, { cookie: client.cookieHeader });
    const stranger = await openWs(app, { cookie: (await visitor(app, 'Zed')).cookieHeader });
    await Promise.all([first, second, stranger].map((socket) => socket.nextOfType('hello')));

    assert.equal((await client.put('/api/name', { name: 'Grace' })).status, 200);
    for (const socket of [first, second]) {
      const pushed = await socket.nextOfType('session', PUSH_WITHIN_MS);
      assert.equal(pushed.name, 'Grace');
      assert.deepEqual(pushed.basket, []);
    }

    assert.equal((await client.post('/api/basket/items', { sku: 'pear', qty: 3 })).status, 201);
    const pushed = await first.nextOfType('session', PUSH_WITHIN_MS);
    assert.deepEqual(pushed, { type: 'session', ...(await client.get('/api/session')).body });
    assert.deepEqual(pushed.basket, [{ sku: 'pear', qty: 3 }]);
    assert.deepEqual((await second.nextOfType('session', PUSH_WITHIN_MS)).basket, [{ sku: 'pear', qty: 3 }]);

    // The other session's socket heard nothing: its whoami answer is the first thing after hello.
    stranger.send({ type: 'whoami' });
    assert.equal((await stranger.next()).type, 'whoami');

    // A socket keeps working after pushes.
    first.send({ type: 'whoami' });
    assert.deepEqual((await first.nextOfType('whoami')).basket, [{ sku: 'pear', qty: 3 }]);
  });

  test('a burst of changes ends with the sockets showing the last one', async () => {
    const client = await visitor(app, 'n0');
    const socket = await openWs(app, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    for (let n = 1; n <= 10; n++) await client.put('/api/name', { name: `n${n}` });
    await Promise.all(Array.from({ length: 10 }, () => client.post('/api/basket/items', { sku: 'fig', qty: 1 })));
    await socket.next((message) => message.type === 'session' && message.name === 'n10' && message.basket[0]?.qty === 10, 2000);
  });

  test('logout closes the session’s sockets with 4401', async () => {
    const client = await visitor(app, 'Ada');
    const socket = await openWs(app, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    assert.equal((await client.post('/api/logout')).status, 200);
    assert.equal((await socket.closedWithin(PUSH_WITHIN_MS)).code, 4401);
  });

  test('login: the socket stays open, follows the new id and hears the new user', async () => {
    const client = await visitor(app, 'Ada');
    await client.post('/api/basket/items', { sku: 'apple', qty: 1 });
    const oldId = client.sessionId();
    const socket = await openWs(app, { cookie: client.cookieHeader });
    assert.equal((await socket.nextOfType('hello')).authenticated, false);

    const login = await client.post('/api/login', { username: 'alice' });
    assert.equal(login.status, 200);
    assert.notEqual(client.sessionId(), oldId);
    // The first push already shows the login done: never the session under its new id but still anonymous.
    const pushed = await socket.nextOfType('session', PUSH_WITHIN_MS);
    assert.deepEqual(view(pushed), { user: 'alice', authenticated: true, name: 'Ada', basket: [{ sku: 'apple', qty: 1 }] });
    assert.ok(socket.open);

    // It follows the new id: changes through the new cookie reach it, and the logout closes it.
    await client.put('/api/name', { name: 'Alice' });
    assert.equal((await socket.next((message) => message.type === 'session' && message.name === 'Alice', PUSH_WITHIN_MS)).user, 'alice');
    socket.send({ type: 'whoami' });
    assert.deepEqual(view(await socket.nextOfType('whoami')), { user: 'alice', authenticated: true, name: 'Alice', basket: [{ sku: 'apple', qty: 1 }] });
    await client.post('/api/logout');
    assert.equal((await socket.closedWithin(PUSH_WITHIN_MS)).code, 4401);
  });

  test('after the subscriber reconnects, a change it missed still reaches the socket', async () => {
    const client = await visitor(app, 'before');
    const socket = await openWs(app, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    const channel = `${app.prefix}users`;
    // Cut the node's subscriber and change the session while it is away (retry until the change
    // really happened with nobody subscribed: the reconnect takes 50–100 ms).
    let missed = false;
    for (let attempt = 1; attempt <= 10 && !missed; attempt++) {
      await waitFor(async () => (await subscribers(channel)) === 1);
      await redis.process.command(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
      await client.put('/api/name', { name: `missed-${attempt}` });
      missed = (await subscribers(channel)) === 0;
    }
    assert.ok(missed, 'a change was made while the subscriber was away');
    const pushed = await socket.next((message) => message.type === 'session' && message.name?.startsWith('missed-'), 3000);
    assert.equal(pushed.name, (await client.get('/api/session')).body.name);
  });
});

describe('a Redis restart', () => {
  test('the socket stays open and hears changes again once the subscriber is back', async () => {
    const durable = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const node = await startApp({ redis_connection_pool: { default: { port: String(durable.port) } } });
    try {
      const client = await visitor(node, 'Ada');
      const socket = await openWs(node, { cookie: client.cookieHeader });
      await socket.nextOfType('hello');
      await durable.kill();
      await durable.restart();
      // Requests succeed again within a few seconds (the pools' reconnect backoff is capped near 2 s).
      await waitFor(async () => (await client.put('/api/name', { name: 'after-restart' })).status === 200, 10_000);
      const pushed = await socket.next((message) => message.type === 'session' && message.name === 'after-restart', 5000);
      assert.equal(pushed.user, (await client.get('/api/session')).body.user);
      assert.ok(socket.open);
    } finally {
      await node.close();
      await durable.stop();
    }
  });
});

describe('two app nodes sharing one Redis', () => {
  test('a change, a login and a logout through node A reach a socket on node B', async () => {
    const prefix = testPrefix('ws-nodes');
    const a = await startNode(prefix);
    const b = await startNode(prefix);
    const client = await visitor(a, 'Ada');
    const onB = await openWs(b, { cookie: client.cookieHeader });
    assert.equal((await onB.nextOfType('hello')).name, 'Ada', 'B reads the session A created');

    await client.put('/api/name', { name: 'Grace' });
    assert.equal((await onB.nextOfType('session', PUSH_WITHIN_MS)).name, 'Grace');
    await client.post('/api/basket/items', { sku: 'kiwi', qty: 4 });
    assert.deepEqual((await onB.nextOfType('session', PUSH_WITHIN_MS)).basket, [{ sku: 'kiwi', qty: 4 }]);

    await client.post('/api/login', { username: 'bob' });
    const pushed = await onB.next((message) => message.type === 'session' && message.user === 'bob', PUSH_WITHIN_MS);
    assert.equal(pushed.authenticated, true);
    assert.ok(onB.open);

    await client.post('/api/logout');
    assert.equal((await onB.closedWithin(PUSH_WITHIN_MS)).code, 4401);
  });
});

describe('shutdown', () => {
  test('closing the app closes its sockets with 1001 and its subscriber', async () => {
    const node = await startApp({ redis_connection_pool: { default: { port: String(redis.port) } } });
    const client = await visitor(node, 'Ada');
    const withSession = await WsClient.open(`${node.url}/ws`, { cookie: client.cookieHeader });
    const without = await WsClient.open(`${node.url}/ws`);
    await Promise.all([withSession.nextOfType('hello'), without.nextOfType('hello')]);
    assert.equal(await subscribers(`${node.prefix}users`), 1);
    assert.equal(await subscribers(`${node.prefix}${client.sessionId()}`), 1);
    await node.close();
    assert.equal((await withSession.closedWithin(100)).code, 1001, 'closed by the time app.close() resolved');
    assert.equal((await without.closedWithin(100)).code, 1001);
    assert.equal(await subscribers(`${node.prefix}users`), 0);
    assert.equal(await subscribers(`${node.prefix}${client.sessionId()}`), 0);
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

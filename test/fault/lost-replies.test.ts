// Replies lost after Redis ran the command: ioredis sends unanswered commands again after it
// reconnects, and every keepsake write recognises its own re-send (an operation id), so a 2xx
// means applied exactly once and a 503 at most once.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';
import { ReplyDroppingProxy } from '../support/reply-dropping-proxy.js';
import { FUNCTION } from '../../src/redis/redis-functions.js';

async function startBehindProxy(t: TestContext, timeouts = { acquire_timeout_ms: '1000', command_timeout_ms: '2000' }) {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const proxy = await ReplyDroppingProxy.start(server.port);
  t.after(() => proxy.close());
  const app = await startApp({ redis_connection_pool: { default: { port: String(proxy.port), ...timeouts } } });
  t.after(() => app.close());
  return { server, proxy, app };
}

test('a lost write reply: eight basket adds in a row, each answered 201 is applied exactly once', async (t) => {
  const { proxy, app } = await startBehindProxy(t);
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  const answers: number[] = [];
  for (let i = 0; i < 8; i++) {
    if (i === 2 || i === 5) proxy.dropReplyOf(FUNCTION.write);
    answers.push((await alice.post('/api/basket/items', { sku: `sku-${i}`, qty: 1 })).status);
    assert.equal(proxy.armed, false, `add ${i}: its write reply was dropped`);
  }
  assert.equal(proxy.dropped, 2);
  const basket = (await alice.get('/api/basket')).body.items as { sku: string; qty: number }[];
  for (const [i, status] of answers.entries()) {
    const item = basket.find((entry) => entry.sku === `sku-${i}`);
    if (status === 201) assert.equal(item?.qty, 1, `add ${i} answered 201: applied once (basket ${JSON.stringify(basket)})`);
    else assert.ok(item === undefined || item.qty === 1, `add ${i} answered ${status}: applied at most once`);
  }
  assert.deepEqual(answers, Array(8).fill(201), 'a lost reply is recovered by the re-send, not answered 503');
});

test('a lost reply of a login: the login is whole, announced, and keeps the data', async (t) => {
  const { proxy, app } = await startBehindProxy(t);
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  const before = alice.sessionId();
  const socket = await WsClient.open(`${app.url}/ws`, { cookie: alice.cookieHeader });
  t.after(() => socket.socket.terminate());
  assert.equal((await socket.next((message) => message.type === 'hello')).authenticated, false);
  proxy.dropReplyOf(FUNCTION.rename);
  const login = await alice.post('/api/login', { username: 'alice' });
  assert.equal(proxy.dropped, 1, 'the rename reply was dropped');
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.notEqual(alice.sessionId(), before, 'a new id');
  const view = await alice.get('/api/session');
  assert.equal(view.body.user, 'alice');
  assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 2 }], 'the data came along');
  // The sockets follow the login: it was announced, so they hear the new user and stay open.
  const pushed = await socket.next((message) => message.type === 'session' && message.user === 'alice', 3000);
  assert.deepEqual(pushed.basket, [{ sku: 'tea', qty: 2 }]);
  assert.equal((await alice.put('/api/name', { name: 'Alice' })).status, 200);
  await socket.next((message) => message.type === 'session' && message.name === 'Alice', 3000);
  assert.ok(socket.open, 'the socket is still open');
});

test('a login whose reply is lost past command_timeout_ms: Redis ran it, so the visitor gets the new session, not an orphan', async (t) => {
  const { server, proxy, app } = await startBehindProxy(t, { acquire_timeout_ms: '1500', command_timeout_ms: '400' });
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 2 })).status, 201);
  const before = alice.sessionId();
  // Redis runs the rename; its reply is lost and the app's reconnect is held back past the
  // command timeout: the request cannot hear how its login went in time.
  proxy.dropReplyOf(FUNCTION.rename, 1, 900);
  const login = await alice.post('/api/login', { username: 'alice' });
  assert.equal(proxy.dropped, 1, 'the rename reply was dropped');
  const keys = (await server.client().keys(`${app.prefix}*`)).filter((key) => !key.startsWith(`${app.prefix}user:`));
  assert.equal(keys.length, 1, `one session in the store: ${keys.join(', ')}`);
  assert.notEqual(keys[0], app.prefix + before, 'Redis ran the rename');
  // The login happened: answering 503 would leave the browser with the old cookie, naming nothing.
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.equal(app.prefix + alice.sessionId(), keys[0], 'the cookie names the renamed session');
  const view = await alice.get('/api/session');
  assert.equal(view.body.user, 'alice');
  assert.deepEqual(view.body.basket, [{ sku: 'tea', qty: 2 }], 'the data came along');
});

test('a lost reply of a logout: the session is gone and the logout answers ok', async (t) => {
  const { server, proxy, app } = await startBehindProxy(t);
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  const id = alice.sessionId()!;
  proxy.dropReplyOf(FUNCTION.destroy);
  const logout = await alice.post('/api/logout');
  assert.equal(proxy.dropped, 1);
  assert.equal(logout.status, 200);
  assert.equal(await server.client().exists(`${app.prefix}${id}`), 0, 'the session is gone');
});

test('a lost reply of an ending by id (the CLI\'s `session destroy`): it ended the session and says so', async (t) => {
  const { server, proxy, app } = await startBehindProxy(t);
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/login', { username: 'alice' })).status, 200);
  const id = alice.sessionId()!;
  proxy.dropReplyOf(FUNCTION.destroy);
  // The re-send finds nothing left to delete; the first send did delete it.
  assert.equal(await app.app.sessionManager.destroyById(id), true, 'reported as ended, not as "no such session"');
  assert.equal(proxy.dropped, 1);
  assert.equal(await server.client().exists(`${app.prefix}${id}`), 0, 'the session is gone');
});

test('a write answered 503 and re-sent after a later write is not applied again over it', async (t) => {
  const { server, proxy, app } = await startBehindProxy(t);
  const alice = new Client(app.url);
  assert.equal((await alice.put('/api/name', { name: 'before' })).status, 200);
  // Redis holds the write past command_timeout_ms (503), runs it once unpaused, and its reply is
  // lost: ioredis sends it again after reconnecting. A later write lands in between.
  await server.process.command(['CLIENT', 'PAUSE', '2500', 'WRITE']);
  proxy.dropReplyOf(FUNCTION.write);
  const timedOut = await alice.put('/api/name', { name: 'first' });
  assert.equal(timedOut.status, 503);
  await eventually('the first write ran and its reply was dropped', 5000, async () => proxy.dropped === 1, 5);
  const fcalls = async () => (await server.commandStats()).get('fcall') ?? 0;
  const before = await fcalls();
  assert.equal((await alice.put('/api/name', { name: 'second' })).status, 200);
  await eventually('the re-send reached Redis', 5000, async () => (await fcalls()) >= before + 2);
  assert.equal((await alice.get('/api/session')).body.name, 'second', 'the re-sent first write changed nothing');
});

test('a lost reply while ten more writes reach the session before the re-send: the add is not applied twice', async (t) => {
  const { server, proxy, app } = await startBehindProxy(t);
  // A second node straight on Redis: its writes land while the first node's re-send is held back.
  const other = await startApp({ session: { key_prefix: app.prefix }, redis_connection_pool: { default: { port: String(server.port) } } });
  t.after(() => other.close());
  const alice = new Client(app.url);
  assert.equal((await alice.post('/api/basket/items', { sku: 'tea', qty: 1 })).status, 201);
  const elsewhere = new Client(other.url);
  elsewhere.cookies = alice.cookies;

  proxy.dropReplyOf(FUNCTION.write, 1, 500);
  const add = alice.post('/api/basket/items', { sku: 'tea', qty: 1 });
  await eventually('the add ran and its reply was dropped', 3000, async () => proxy.dropped === 1, 5);
  // More writes than the session's list of recent operation ids holds.
  for (let i = 0; i < 10; i++) assert.equal((await elsewhere.put('/api/name', { name: `tab-${i}` })).status, 200);
  const answer = await add;

  const view = (await elsewhere.get('/api/session')).body;
  const tea = (view.basket as { sku: string; qty: number }[]).find((item) => item.sku === 'tea');
  assert.equal(tea?.qty, 2, `the add was applied exactly once by its first send (answered ${answer.status})`);
  assert.equal(view.name, 'tab-9', 'the later writes stand');
  // Redis could not tell the re-send from a new add: nothing applied, and the request says so.
  assert.equal(answer.status, 503, JSON.stringify(answer.body));
  assert.equal(answer.body.error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
});

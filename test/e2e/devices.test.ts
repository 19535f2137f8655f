/**
 * Devices and presence (DEMO-APP.md, "Devices"; issue 15) on two app nodes sharing a Redis, over
 * real HTTP and WebSocket clients, plus a third node in a child process killed with SIGKILL.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, eventually, inspector } from '../support/session-helpers.js';
import { commandsDuring as commandsDuringOn, RedisServer } from '../support/redis-server.js';
import { WsClient } from '../support/ws-client.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/keepsake.js');

const UA = {
  chromeLinux: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  firefoxWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
  safariIos: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
};

let prefix: string;
let nodeA: TestApp;
let nodeB: TestApp;
let redis: Redis;
const sockets: WsClient[] = [];
let userSeq = 0;

/** A client that logs in as `user` on `node` with `userAgent` (sent with every request). */
class Device extends Client {
  constructor(node: TestApp, readonly userAgent: string) {
    super(node.url);
  }
  override request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    return super.request<T>(method, path, body, { 'user-agent': this.userAgent, ...headers });
  }
  async login(user: string): Promise<this> {
    const reply = await this.post('/api/login', { username: user });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    return this;
  }
  async devices(): Promise<any[]> {
    const reply = await this.get('/api/devices');
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    return reply.body.devices;
  }
}

function newUser(): string {
  return `u${++userSeq}-${Math.random().toString(36).slice(2, 8)}`;
}

async function openWs(node: TestApp | string, client?: Client): Promise<WsClient> {
  const url = typeof node === 'string' ? node : node.url;
  const socket = await WsClient.open(`${url}/ws`, { cookie: client?.cookieHeader });
  sockets.push(socket);
  await socket.nextOfType('hello');
  return socket;
}

before(async () => {
  prefix = testPrefix('devices');
  nodeA = await startApp({ session: { key_prefix: prefix } });
  nodeB = await startApp({ session: { key_prefix: prefix } });
  redis = inspector();
});

after(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await nodeA.close();
  await nodeB.close();
  await dropPrefix(redis, prefix);
  await redis.quit();
});

describe('devices', () => {
  test('three clients with different User-Agents are three devices with browser, OS and the right current', async () => {
    const user = newUser();
    const chrome = await new Device(nodeA, UA.chromeLinux).login(user);
    const firefox = await new Device(nodeB, UA.firefoxWindows).login(user);
    const safari = await new Device(nodeA, UA.safariIos).login(user);
    for (const [client, browser, os] of [
      [chrome, 'Chrome', 'Linux'],
      [firefox, 'Firefox', 'Windows'],
      [safari, 'Safari', 'iOS'],
    ] as const) {
      const devices = await client.devices();
      assert.equal(devices.length, 3);
      const current = devices.filter((device) => device.current);
      assert.equal(current.length, 1);
      assert.equal(current[0].browser, browser);
      assert.equal(current[0].os, os);
      assert.equal(current[0].userAgent, client.userAgent);
      assert.equal(current[0].ip, '127.0.0.1');
      assert.equal(current[0].online, false);
      assert.equal(current[0].sockets, 0);
      assert.ok(!Number.isNaN(Date.parse(current[0].createdAt)) && !Number.isNaN(Date.parse(current[0].lastSeenAt)));
      assert.deepEqual(Object.keys(current[0]).sort(), ['browser', 'createdAt', 'current', 'handle', 'ip', 'lastSeenAt', 'online', 'os', 'sockets', 'userAgent']);
      // Newest lastSeenAt first.
      const seen = devices.map((device) => device.lastSeenAt);
      assert.deepEqual(seen, [...seen].sort().reverse());
      // A handle reveals nothing of any session id or cookie.
      for (const other of [chrome, firefox, safari]) {
        for (const device of devices) assert.ok(!other.cookieHeader!.includes(device.handle) && !device.handle.includes(other.sessionId()!.slice(0, 8)));
      }
    }
  });

  test('a User-Agent is kept to 256 characters; browser and OS are null when it names none', async () => {
    const client = await new Device(nodeA, 'x'.repeat(400)).login(newUser());
    const [device] = await client.devices();
    assert.equal(device.userAgent.length, 256);
    assert.equal(device.browser, null);
    assert.equal(device.os, null);
  });

  test('GET /api/devices is 401 ERR_NOT_AUTHENTICATED before login', async () => {
    const client = new Client(nodeA.url);
    const reply = await client.get('/api/devices');
    assert.equal(reply.status, 401);
    assert.equal(reply.body.error.code, 'ERR_NOT_AUTHENTICATED');
  });

  test('revoking a device from another node closes its socket with 4401 within 1 s; its cookie gets a new anonymous session', async () => {
    const user = newUser();
    const victim = await new Device(nodeA, UA.chromeLinux).login(user);
    const keeper = await new Device(nodeB, UA.firefoxWindows).login(user);
    const socket = await openWs(nodeA, victim);
    const handle = (await victim.devices()).find((device) => device.current).handle;
    const began = Date.now();
    const reply = await keeper.delete(`/api/devices/${handle}`);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual(reply.body.devices.map((device: any) => device.handle).includes(handle), false);
    assert.equal(reply.body.devices.length, 1);
    const closed = await socket.closedWithin(1000);
    assert.equal(closed.code, 4401);
    assert.ok(Date.now() - began < 1500);
    const oldId = victim.sessionId()!;
    assert.equal(await redis.exists(`${prefix}${oldId}`), 0);
    const after = await victim.get('/api/session');
    assert.equal(after.status, 200);
    assert.match(after.body.user, /^anon-/);
    assert.equal(after.body.authenticated, false);
    assert.notEqual(victim.sessionId(), oldId);
    assert.equal((await victim.get('/api/devices')).status, 401);
  });

  test('revoking the current device is a logout', async () => {
    const user = newUser();
    const client = await new Device(nodeA, UA.chromeLinux).login(user);
    const other = await new Device(nodeA, UA.safariIos).login(user);
    const handle = (await client.devices()).find((device) => device.current).handle;
    const reply = await client.delete(`/api/devices/${handle}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.devices.length, 1);
    assert.ok(reply.setCookies.some((cookie) => /max-age=0/i.test(cookie)));
    assert.equal((await other.devices()).length, 1);
  });

  test('revoke-others leaves only the current device, and closes the others\' sockets', async () => {
    const user = newUser();
    const clients = [await new Device(nodeA, UA.chromeLinux).login(user), await new Device(nodeB, UA.firefoxWindows).login(user), await new Device(nodeA, UA.safariIos).login(user)];
    const otherSocket = await openWs(nodeB, clients[1]);
    const reply = await clients[2]!.post('/api/devices/revoke-others');
    assert.equal(reply.status, 200);
    assert.equal(reply.body.devices.length, 1);
    assert.equal(reply.body.devices[0].current, true);
    assert.equal((await otherSocket.closedWithin(1000)).code, 4401);
    assert.equal((await clients[2]!.devices()).length, 1);
    for (const client of clients.slice(0, 2)) assert.equal((await client.get('/api/devices')).status, 401);
  });

  test("another user's handle is 404 ERR_NOT_FOUND and ends nothing", async () => {
    const alice = await new Device(nodeA, UA.chromeLinux).login(newUser());
    const bob = await new Device(nodeB, UA.firefoxWindows).login(newUser());
    const bobsHandle = (await bob.devices())[0].handle;
    const reply = await alice.delete(`/api/devices/${bobsHandle}`);
    assert.equal(reply.status, 404);
    assert.equal(reply.body.error.code, 'ERR_NOT_FOUND');
    assert.equal((await bob.devices()).length, 1);
    assert.equal((await alice.delete('/api/devices/no-such-handle')).status, 404);
  });

  test('last seen moves at most once a minute: a read-only route within the minute writes nothing', async () => {
    const client = await new Device(nodeA, UA.chromeLinux).login(newUser());
    const key = `${prefix}${client.sessionId()}`;
    const [version, seen] = await redis.hmget(key, 'm:v', 'm:ls');
    assert.equal((await client.get('/api/session')).status, 200);
    assert.deepEqual(await redis.hmget(key, 'm:v', 'm:ls'), [version, seen]);
    // Two minutes later (as far as the session knows): one write records the visit.
    const past = String(Date.now() - 120_000);
    await redis.hset(key, 'm:ls', past);
    // A page's parallel calls: one write between them.
    const replies = await Promise.all([client.get('/api/session'), client.get('/api/basket'), client.get('/api/session')]);
    assert.deepEqual(replies.map((reply) => reply.status), [200, 200, 200]);
    const [version2, seen2] = await redis.hmget(key, 'm:v', 'm:ls');
    assert.ok(Number(seen2) > Number(past) + 60_000);
    assert.equal(Number(version2), Number(version) + 1);
    assert.equal((await client.get('/api/session')).status, 200);
    assert.deepEqual(await redis.hmget(key, 'm:v', 'm:ls'), [version2, seen2]);
  });
});

describe('presence', () => {
  test('online with the first socket and offline with the last, on both nodes; the user\'s sockets are told', async () => {
    const user = newUser();
    const watcher = await new Device(nodeB, UA.firefoxWindows).login(user);
    const watcherSocket = await openWs(nodeB, watcher);
    const client = await new Device(nodeA, UA.chromeLinux).login(user);
    const handle = (await client.devices()).find((device) => device.current).handle;
    // Login of another device: pushed to the watcher's socket.
    let pushed = await watcherSocket.next((message) => message.type === 'devices' && message.devices.some((device: any) => device.handle === handle), 1000);
    assert.equal(pushed.devices.find((device: any) => device.current).online, true); // the watcher's own socket
    const state = async (node: TestApp) => {
      const viewer = new Client(node.url);
      viewer.cookies = new Map(watcher.cookies);
      const reply = await viewer.get('/api/devices');
      return reply.body.devices.find((device: any) => device.handle === handle);
    };
    const first = await openWs(nodeA, client);
    await eventually('online on node A', 1000, async () => (await state(nodeA)).online);
    assert.deepEqual(pick(await state(nodeB)), { online: true, sockets: 1 });
    pushed = await watcherSocket.next((message) => message.type === 'devices' && message.devices.find((device: any) => device.handle === handle)?.online === true, 1000);
    const second = await openWs(nodeB, client);
    await eventually('two sockets counted', 2000, async () => (await state(nodeA)).sockets === 2);
    await first.close();
    await eventually('one socket counted', 2000, async () => (await state(nodeB)).sockets === 1);
    assert.equal((await state(nodeA)).online, true);
    await second.close();
    await watcherSocket.next((message) => message.type === 'devices' && message.devices.find((device: any) => device.handle === handle)?.online === false, 1000);
    for (const node of [nodeA, nodeB]) assert.deepEqual(pick(await state(node)), { online: false, sockets: 0 });
  });

  test('the sockets of a node killed with SIGKILL show offline within 30 s, and the user\'s sockets are told', { timeout: 60_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'keepsake-devices-'));
    const ini = join(dir, 'app.ini');
    writeFileSync(ini, `[session]\nkey_prefix = ${prefix}\n[server]\nws_allowed_origins = *\n[redis_connection_pool.default]\nport = 6379\n`);
    const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--config', ini, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SESSION_SECRETS: '' } });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL logged: ${stderr}`)), 15_000);
      child.stderr!.on('data', (chunk: string) => {
        stderr += chunk;
        const match = /listening on (http:\/\/[^\s]+)/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });
    const user = newUser();
    const viewer = await new Device(nodeA, UA.chromeLinux).login(user);
    const doomed = new Device({ url } as TestApp, UA.firefoxWindows);
    await doomed.login(user);
    const handle = (await doomed.devices()).find((device) => device.current).handle;
    const viewerSocket = await openWs(nodeA, viewer);
    await openWs(url, doomed);
    await openWs(url, doomed);
    await eventually('the child node\'s sockets online', 5000, async () => (await viewer.devices()).find((device) => device.handle === handle)?.sockets === 2);
    // Messages before this one (the device still offline before its sockets opened) are taken.
    await viewerSocket.next((message) => message.type === 'devices' && message.devices.find((device: any) => device.handle === handle)?.online === true, 5000);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const took = await eventually('offline after the node died', 30_000, async () => (await viewer.devices()).find((device) => device.handle === handle)?.online === false, 250);
    t.diagnostic(`offline ${took} ms after SIGKILL`);
    // The viewer's socket is told too, by the first live node whose heartbeat finds the dead one.
    await viewerSocket.next((message) => message.type === 'devices' && message.devices.find((device: any) => device.handle === handle)?.online === false, 15_000);
    // The session itself lives on: the device is still listed, offline.
    assert.equal((await viewer.devices()).length, 2);
  });
});

describe('presence costs', () => {
  test('a socket costs a few Redis commands to open and close, and none per message', async (t) => {
    const server = await RedisServer.start();
    const node = await startApp({ redis_connection_pool: { default: { port: String(server.port) } } });
    t.after(async () => {
      await node.close();
      await server.stop();
    });
    // No command per message: absence can only be watched for a while (300 ms).
    const quietFor = () => new Promise((resolve) => setTimeout(resolve, 300));
    const client = await new Device(node, UA.chromeLinux).login(newUser());
    const socket = await WsClient.open(`${node.url}/ws`, { cookie: client.cookieHeader });
    await socket.nextOfType('hello');
    await socket.nextOfType('devices'); // it went online: told
    const messages = await commandsDuringOn(server, async () => {
      for (let i = 0; i < 20; i++) {
        socket.send({ type: 'whoami' });
        await socket.nextOfType('whoami');
      }
    }, quietFor);
    assert.deepEqual(messages, {}, 'no Redis command per message');
    // The close's presence write is sent without waiting; its last command is the PUBLISH that
    // announces the device went offline: the window ends once that ran.
    const publishes = async () => (await server.commandStats()).get('publish') ?? 0;
    const publishedBefore = await publishes();
    const closing = await commandsDuringOn(server, () => socket.close(), () => eventually('the offline notice was published', 3000, async () => (await publishes()) > publishedBefore, 10));
    const total = Object.values(closing).reduce((a, b) => a + b, 0);
    // HDEL + PEXPIRE of the presence hash, ZADD + PEXPIRE of the nodes, PEXPIRE of the node's users, PUBLISH (offline).
    assert.ok(total <= 8, `closing a socket sent ${JSON.stringify(closing)}`);
    assert.equal(closing.hdel, 1);
  });
});

function pick(device: any): { online: boolean; sockets: number } {
  return { online: device.online, sockets: device.sockets };
}

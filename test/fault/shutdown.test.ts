// Graceful shutdown of a real `keepsake serve` process: SIGTERM with slow requests and open
// WebSockets in flight. Every in-flight reply completes (its persist included), sockets get 1001,
// new connections are refused, and the process exits 0 within 5 s without being cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startApp, testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { eventually } from '../support/session-helpers.js';
import { RedisServer, redisCommand, sleep, untilBusy } from '../support/redis-server.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/keepsake.js');

interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function serve(ini: string): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'keepsake-shutdown-'));
  const file = join(dir, 'app.ini');
  writeFileSync(file, ini);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, at: Date.now() });
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve logged no URL within 10 s:\n${stderr}`)), 10_000);
    const look = () => {
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stderr!.on('data', look);
    void exited.then(() => reject(new Error(`serve exited before listening:\n${stderr}`)));
  });
  return { child, url, stderr: () => stderr, exited };
}

interface OpenSocket {
  socket: WebSocket;
  closed: Promise<number>;
}

async function openSocket(url: string, client: Client): Promise<OpenSocket> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { headers: { cookie: client.cookieHeader ?? '' } });
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  const hello = await new Promise<{ type: string; name: string | null }>((resolve, reject) => {
    socket.once('message', (data) => resolve(JSON.parse(String(data))));
    socket.once('error', reject);
  });
  assert.equal(hello.type, 'hello');
  return { socket, closed };
}

/** True when a new TCP connection to `url` is refused. */
function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

test('SIGTERM with slow requests and open WebSockets: replies complete and persist, sockets get 1001, exit 0 within 5 s', async (t) => {
  const redis = await RedisServer.start({ args: ['--enable-debug-command', 'yes'] });
  t.after(() => redis.stop());
  const prefix = testPrefix('shutdown');
  const served = await serve(
    [
      '[server]',
      'host = 127.0.0.1',
      'ws_allowed_origins = *',
      '[session]',
      `key_prefix = ${prefix}`,
      '[redis_connection_pool.default]',
      `port = ${redis.port}`,
      'acquire_timeout_ms = 500',
      // Longer than the Redis sleep below: the slow requests must succeed, not time out.
      'command_timeout_ms = 3000',
      '',
    ].join('\n'),
  );
  t.after(() => {
    if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill('SIGKILL');
  });

  const clients = Array.from({ length: 6 }, () => new Client(served.url));
  for (const client of clients) assert.equal((await client.put('/api/name', { name: 'before' })).status, 200);
  const sockets = await Promise.all(clients.slice(0, 3).map((client) => openSocket(served.url, client)));
  sockets.push(await openSocket(served.url, new Client(served.url))); // a socket without a session

  // Make every request slow: Redis stalls, so they wait inside the app for their load and persist.
  const sleeping = redisCommand(redis.port, ['DEBUG', 'SLEEP', '2.5'], { timeoutMs: 10_000 });
  await untilBusy(redis.port);
  let settled = 0;
  const inFlight = clients.map((client, i) => client.put('/api/name', { name: `during-${i}` }).finally(() => settled++));
  // The requests have reached the server: fastify logs each one as it comes in (LOG_LEVEL info).
  const incoming = () => served.stderr().split('\n').filter((line) => line.includes('"incoming request"') && line.includes('"PUT"')).length;
  await eventually('the slow requests reached the server', 5000, async () => incoming() >= clients.length * 2, 20);

  const signalled = Date.now();
  served.child.kill('SIGTERM');
  // The listening socket closes while the slow requests are still being served.
  let refusedAfter: number | undefined;
  while (refusedAfter === undefined && Date.now() - signalled < 3000) {
    if (await refused(served.url)) refusedAfter = Date.now() - signalled;
    else await sleep(50);
  }
  t.diagnostic(`new connections refused ${refusedAfter} ms after SIGTERM`);
  assert.ok(refusedAfter !== undefined, `new connections still accepted 3 s after SIGTERM; stderr:\n${served.stderr()}`);
  assert.equal(settled, 0, 'no in-flight request had finished yet (Redis still sleeps)');

  const replies = await Promise.all(inFlight);
  replies.forEach((reply, i) => {
    assert.equal(reply.status, 200, `in-flight request ${i}: ${JSON.stringify(reply.body)}`);
    assert.deepEqual(reply.body, { name: `during-${i}` });
  });
  const codes = await Promise.all(sockets.map((socket) => socket.closed));
  assert.deepEqual(codes, sockets.map(() => 1001), 'every socket closed with 1001 (going away)');

  const exit = await served.exited;
  assert.equal(await sleeping, 'OK');
  assert.equal(exit.code, 0, `exit code (signal ${exit.signal}); stderr:\n${served.stderr()}`);
  const tookMs = exit.at - signalled;
  t.diagnostic(`exited ${tookMs} ms after SIGTERM`);
  assert.ok(tookMs < 5000, `exited ${tookMs} ms after SIGTERM`);
  assert.doesNotMatch(served.stderr(), /shutdown_timeout_ms/, 'shut down cleanly, not cut by the backstop');

  // What the replies acknowledged is in Redis: read it back through another app on the same store.
  const reader = await startApp({ session: { key_prefix: prefix }, redis_connection_pool: { default: { port: String(redis.port) } } });
  t.after(() => reader.close());
  for (const [i, client] of clients.entries()) {
    const view = await new Client(reader.url).get('/api/session', { cookie: client.cookieHeader! });
    assert.equal(view.status, 200);
    assert.equal(view.body.name, `during-${i}`, `session ${i} holds what its reply acknowledged`);
  }
});

test('SIGINT on an idle server exits 0 at once', async (t) => {
  const prefix = testPrefix('shutdown');
  const served = await serve(`[session]\nkey_prefix = ${prefix}\n`);
  t.after(() => {
    if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill('SIGKILL');
  });
  const client = new Client(served.url);
  assert.equal((await client.get('/health')).status, 200); // leaves an idle keep-alive connection
  const signalled = Date.now();
  served.child.kill('SIGINT');
  served.child.kill('SIGINT'); // a second Ctrl-C does not turn the exit into a failure
  const exit = await served.exited;
  assert.equal(exit.code, 0, served.stderr());
  assert.ok(exit.at - signalled < 5000);
  assert.doesNotMatch(served.stderr(), /shutdown_timeout_ms/);
});

test('persist = after_response: app.close() waits for the persists still running after their replies', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.stop());
  const pool = { default: { port: String(redis.port), command_timeout_ms: '3000' } };
  const app = await startApp({ session: { persist: 'after_response' }, redis_connection_pool: pool });
  let closed = false;
  t.after(() => (closed ? undefined : app.close()));
  const client = new Client(app.url);
  assert.equal((await client.put('/api/name', { name: 'first' })).status, 200);
  // Its persist runs after the reply (after_response): wait until it is stored.
  const inspect = redis.client();
  await eventually('the first persist is stored', 5000, async () => (await inspect.hexists(`${app.prefix}${client.sessionId()}`, 'd:name')) === 1, 10);

  // Writes stall (reads go on): the reply leaves, its persist waits in Redis.
  await redis.process.command(['CLIENT', 'PAUSE', '1000', 'WRITE']);
  assert.equal((await client.put('/api/name', { name: 'second' })).status, 200);
  await app.close();
  closed = true;

  const reader = await startApp({ session: { key_prefix: app.prefix }, redis_connection_pool: pool });
  t.after(() => reader.close());
  const view = await new Client(reader.url).get('/api/session', { cookie: client.cookieHeader! });
  assert.equal(view.body.name, 'second', 'the late persist finished before the pools closed');
});

test('the shutdown backstop: a request still stuck after shutdown_timeout_ms does not hold the exit; exit 0 at about that time', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.stop());
  const served = await serve(
    [
      '[server]',
      'host = 127.0.0.1',
      'shutdown_timeout_ms = 800',
      '[session]',
      `key_prefix = ${testPrefix('backstop')}`,
      '[redis_connection_pool.default]',
      `port = ${redis.port}`,
      // Far longer than the backstop: the stuck request would hold a graceful close for 10 s.
      'command_timeout_ms = 10000',
      '',
    ].join('\n'),
  );
  t.after(() => {
    if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill('SIGKILL');
  });
  const client = new Client(served.url);
  assert.equal((await client.put('/api/name', { name: 'before' })).status, 200);
  // Writes stall, reads go on: the request loads its session, then its persist waits in Redis.
  await redis.process.command(['CLIENT', 'PAUSE', '6000', 'WRITE']);
  const stuck = client.put('/api/name', { name: 'stuck' }).catch((error: unknown) => error);
  await eventually('the stuck request loaded its session (it now waits for its write)', 5000, async () => {
    const metrics = await (await fetch(`${served.url}/metrics`)).text();
    return /keepsake_sessions_started_total\{created="false"\} 1\b/.test(metrics);
  }, 20);
  const signalled = Date.now();
  served.child.kill('SIGTERM');
  const exit = await served.exited;
  const took = exit.at - signalled;
  t.diagnostic(`exited ${took} ms after SIGTERM`);
  assert.equal(exit.code, 0, served.stderr());
  assert.ok(took >= 700 && took < 3000, `exited ${took} ms after SIGTERM; shutdown_timeout_ms is 800 and Redis sleeps 6 s`);
  assert.match(served.stderr(), /shutdown took longer than server\.shutdown_timeout_ms = 800; exiting anyway/);
  await stuck;
  await redis.process.command(['CLIENT', 'UNPAUSE']);
});

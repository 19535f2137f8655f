// WebSocket benchmark: memory per idle authenticated socket, Redis round trips of a handshake,
// and the time one session change takes to reach every socket of a user. Run by hand:
//
//   npx tsc -p tsconfig.json && node dist/bench/ws-fanout.js
//   WS_IDLE=2000 WS_FANOUT=200 node dist/bench/ws-fanout.js      # smaller, quicker
//
// A throwaway redis-server (own port, no persistence) and the demo app in a child process
// (--expose-gc, so its memory is read after a full GC, apart from the clients' memory); the
// clients are real `ws` sockets in this process. Results: stdout and bench/results/ws-<date>.md.

import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import WebSocket from 'ws';
import { buildApp } from '../app/build-app.js';
import { parseConfigText } from '../src/index.js';
import { parseInfo, RedisServer } from '../test/support/redis-server.js';

const IDLE = Number(process.env.WS_IDLE ?? 10_000);
const FANOUT = Number(process.env.WS_FANOUT ?? 1_000);
const FANOUT_ROUNDS = Number(process.env.WS_FANOUT_ROUNDS ?? 20);
const HANDSHAKES = Number(process.env.WS_HANDSHAKES ?? 200);
const PARALLEL = 100;
// The fan-out opens FANOUT sockets of one session: above server.ws_max_sockets_per_session (32).
const PREFIX = 'bench:ws:';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ------------------------------------------------------------------ server (child process) --

interface ServerRequest {
  id: number;
  cmd: 'memory';
}

async function serve(redisPort: number): Promise<void> {
  const text = fs.readFileSync(path.join(ROOT, 'config/app.ini'), 'utf8');
  const config = parseConfigText(text, 'config/app.ini', {
    env: {},
    overrides: { session: { key_prefix: PREFIX }, server: { ws_max_sockets_per_session: String(FANOUT + PARALLEL) }, redis_connection_pool: { default: { port: String(redisPort), max: '16' } } },
  });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.on('message', (message: ServerRequest) => {
    if (message.cmd === 'memory') {
      for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
      process.send!({ id: message.id, memory: process.memoryUsage() });
    }
  });
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
  process.send!({ ready: port });
}

// ------------------------------------------------------------------ driver --

class ServerProcess {
  #next = 0;
  readonly #waiting = new Map<number, (value: any) => void>();
  private constructor(readonly child: ChildProcess, readonly url: string) {
    child.on('message', (message: any) => {
      if (typeof message?.id === 'number') this.#waiting.get(message.id)?.(message);
    });
  }

  static async start(redisPort: number): Promise<ServerProcess> {
    const child = fork(fileURLToPath(import.meta.url), ['--server', String(redisPort)], { execArgv: ['--expose-gc'], stdio: 'inherit' });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message: any) => resolve(message.ready));
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    return new ServerProcess(child, `http://127.0.0.1:${port}`);
  }

  async memory(): Promise<NodeJS.MemoryUsage> {
    const id = ++this.#next;
    const reply = await new Promise<any>((resolve) => {
      this.#waiting.set(id, resolve);
      this.child.send({ id, cmd: 'memory' });
    });
    this.#waiting.delete(id);
    return reply.memory;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One JSON request over a keep-alive connection; resolves with the status and Set-Cookie headers. */
function request(url: string, method: string, body: unknown, cookie?: string): Promise<{ status: number; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(url, { method, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...(cookie ? { cookie } : {}) } }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, setCookie: res.headers['set-cookie'] ?? [] }));
    });
    req.once('error', reject);
    req.end(payload);
  });
}

/** Logs `username` in (a new session bound to the user); returns the Cookie header. */
async function login(url: string, username: string): Promise<string> {
  const reply = await request(`${url}/api/login`, 'POST', { username });
  if (reply.status !== 200) throw new Error(`login ${username}: ${reply.status}`);
  return reply.setCookie[0]!.split(';')[0]!;
}

async function putName(url: string, cookie: string, name: string): Promise<void> {
  const reply = await request(`${url}/api/name`, 'PUT', { name }, cookie);
  if (reply.status !== 200) throw new Error(`PUT /api/name: ${reply.status}`);
}

/** Opens a socket and waits for its hello; `onMessage` sees every later message. */
function openSocket(url: string, cookie: string | undefined, onMessage?: (data: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { headers: cookie === undefined ? {} : { cookie }, perMessageDeflate: false });
    socket.once('error', reject);
    socket.once('message', () => {
      if (onMessage) socket.on('message', (data) => onMessage(String(data)));
      resolve(socket);
    });
  });
}

async function inBatches<T>(count: number, parallel: number, make: (index: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) {
        const index = next++;
        out[index] = await make(index);
      }
    }),
  );
  return out;
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.close();
        }),
    ),
  );
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

async function main(): Promise<void> {
  const redis = await RedisServer.start({ args: ['--save', '', '--appendonly', 'no'] });
  let server: ServerProcess | undefined;
  const lines: string[] = [];
  const say = (line = '') => {
    console.log(line);
    lines.push(line);
  };
  const loadBefore = os.loadavg()[0]!;
  try {
    server = await ServerProcess.start(redis.port);
    const url = server.url;

    // ---- 1. Redis commands and round trips of a handshake (the subscriber is opened by the first socket).
    const cookie = await login(url, 'handshaker');
    await closeAll([await openSocket(url, cookie)]);
    const readsOverhead = await (async () => {
      const a = parseInfo(String(await redis.process.command(['INFO', 'stats'])));
      const b = parseInfo(String(await redis.process.command(['INFO', 'stats'])));
      return Number(b.get('total_reads_processed')) - Number(a.get('total_reads_processed'));
    })();
    const statsBefore = await redis.commandStats();
    const infoBefore = parseInfo(String(await redis.process.command(['INFO', 'stats'])));
    for (let i = 0; i < HANDSHAKES; i++) await closeAll([await openSocket(url, cookie)]);
    const infoAfter = parseInfo(String(await redis.process.command(['INFO', 'stats'])));
    const statsAfter = await redis.commandStats();
    const perCommand: string[] = [];
    let commands = 0;
    for (const [name, calls] of statsAfter) {
      const diff = calls - (statsBefore.get(name) ?? 0);
      if (diff > 0) {
        perCommand.push(`${name} ${(diff / HANDSHAKES).toFixed(2)}`);
        commands += diff;
      }
    }
    const reads = Number(infoAfter.get('total_reads_processed')) - Number(infoBefore.get('total_reads_processed')) - readsOverhead;

    // ---- 2. Memory per idle authenticated socket.
    const t0 = Date.now();
    const cookies = await inBatches(IDLE, PARALLEL, (i) => login(url, `idle-${i}`));
    const loginSeconds = (Date.now() - t0) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const memBefore = await server.memory();
    const t1 = Date.now();
    const idle = await inBatches(IDLE, PARALLEL, (i) => openSocket(url, cookies[i]));
    const openSeconds = (Date.now() - t1) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const memAfter = await server.memory();
    const perSocket = (key: keyof NodeJS.MemoryUsage) => (memAfter[key] - memBefore[key]) / IDLE;
    await closeAll(idle);

    // ---- 3. One session change reaching every socket of one user (one session, FANOUT sockets).
    const fanCookie = await login(url, 'fan');
    let round = 0;
    let arrivals: number[] = [];
    let startedAt = 0;
    let resolveRound: (() => void) | null = null;
    const onMessage = (data: string) => {
      if (!data.includes(`"name":"round-${round}"`)) return;
      arrivals.push(performance.now() - startedAt);
      if (arrivals.length === FANOUT) resolveRound?.();
    };
    const fans = await inBatches(FANOUT, PARALLEL, () => openSocket(url, fanCookie, onMessage));
    const lasts: number[] = [];
    const firsts: number[] = [];
    const p50s: number[] = [];
    for (round = 1; round <= FANOUT_ROUNDS; round++) {
      arrivals = [];
      const done = new Promise<void>((resolve) => (resolveRound = resolve));
      startedAt = performance.now();
      await putName(url, fanCookie, `round-${round}`);
      await done;
      arrivals.sort((a, b) => a - b);
      firsts.push(arrivals[0]!);
      p50s.push(percentile(arrivals, 50));
      lasts.push(arrivals[arrivals.length - 1]!);
    }
    await closeAll(fans);

    // ---- Report.
    const date = new Date().toISOString().slice(0, 10);
    say(`# WebSocket fan-out benchmark, ${date}`);
    say();
    say(`Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, redis-server ${parseInfo(String(await redis.process.command(['INFO', 'server']))).get('redis_version')} (throwaway, no persistence).`);
    say('The demo app (`/ws`) runs in its own process; clients are `ws` sockets in the driver process, all on 127.0.0.1.');
    say(`Load average (1 min) at start ${loadBefore.toFixed(1)}, at end ${os.loadavg()[0]!.toFixed(1)}: timings on a busy machine are upper bounds.`);
    say();
    say('## Handshake cost (after the node’s subscriber is up)');
    say();
    say(`${HANDSHAKES} handshakes of a logged-in session, one after another:`);
    say(`- Redis commands per handshake: ${(commands / HANDSHAKES).toFixed(2)} (${perCommand.join(', ')})`);
    say(`- Redis round trips per handshake: ${(reads / HANDSHAKES).toFixed(2)} (read events on the server, INFO total_reads_processed; HGETALL and PEXPIRE travel in one write)`);
    say();
    say(`## Memory per idle authenticated socket (${IDLE.toLocaleString('en')} sockets, one logged-in session each)`);
    say();
    say(`Server process after a full GC, before and after opening the sockets (their sessions already exist):`);
    say(`- heapUsed: ${mb(memBefore.heapUsed)} → ${mb(memAfter.heapUsed)} MB: **${(perSocket('heapUsed') / 1024).toFixed(2)} KiB per socket**`);
    say(`- external + arrayBuffers: ${mb(memBefore.external)} → ${mb(memAfter.external)} MB: ${(perSocket('external') / 1024).toFixed(2)} KiB per socket`);
    say(`- RSS: ${mb(memBefore.rss)} → ${mb(memAfter.rss)} MB: ${(perSocket('rss') / 1024).toFixed(2)} KiB per socket (includes kernel-side socket buffers it touched, allocator slack)`);
    say(`- ${IDLE.toLocaleString('en')} logins took ${loginSeconds.toFixed(1)} s; opening the sockets (${PARALLEL} handshakes in flight) ${openSeconds.toFixed(1)} s (${Math.round(IDLE / openSeconds)} handshakes/s)`);
    say();
    say(`## One session change to ${FANOUT.toLocaleString('en')} sockets of one user`);
    say();
    say(`${FANOUT} sockets on one session; \`PUT /api/name\` sent, time until each socket has its \`session\` message (ms, from sending the request; ${FANOUT_ROUNDS} rounds, median over rounds):`);
    say(`- first socket: ${median(firsts).toFixed(1)} ms`);
    say(`- half of them: ${median(p50s).toFixed(1)} ms`);
    say(`- **all ${FANOUT}: ${median(lasts).toFixed(1)} ms** (best round ${Math.min(...lasts).toFixed(1)}, worst ${Math.max(...lasts).toFixed(1)})`);
    say();
    say('The node re-reads the session once per notice (one HGETALL), then serializes one view per socket.');
    const file = path.join(ROOT, 'bench', 'results', `ws-${date}.md`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, lines.join('\n') + '\n');
    console.log(`\nwritten to ${path.relative(ROOT, file)}`);
  } finally {
    await server?.stop();
    agent.destroy();
    await redis.stop();
  }
}

if (process.argv[2] === '--server') {
  await serve(Number(process.argv[3]));
} else {
  await main();
}

// Devices benchmark: listing the devices of one user with 50 sessions (10 of them with an open
// WebSocket): Redis round trips, commands and time per listing. Run by hand:
//
//   npx tsc -p tsconfig.json && node dist/bench/devices.js
//   DEVICES=50 ROUNDS=500 node dist/bench/devices.js
//
// A throwaway redis-server (own port, no persistence), the demo app in this process; the 50
// logins and sockets are real HTTP and `ws` clients. Round trips are counted as pool.run calls:
// every keepsake exchange issues its commands in one tick on one connection (one socket write).
// Results: stdout and bench/results/devices-<date>.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { buildApp } from '../app/build-app.js';
import { createKeepsakeContainer, parseConfigText } from '../src/index.js';
import { RedisServer } from '../test/support/redis-server.js';

const DEVICES = Number(process.env.DEVICES ?? 50);
const ONLINE = Math.min(DEVICES, 10);
const ROUNDS = Number(process.env.ROUNDS ?? 500);
const PREFIX = 'bench:devices:';
const USER = 'bench-user';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function timed(rounds: number, fn: () => Promise<unknown>): Promise<{ p50: number; p95: number; mean: number }> {
  for (let i = 0; i < 20; i++) await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const began = performance.now();
    await fn();
    times.push(performance.now() - began);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p95: percentile(times, 95), mean: times.reduce((a, b) => a + b, 0) / times.length };
}

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const text = fs.readFileSync(path.join(ROOT, 'config/app.ini'), 'utf8');
  const config = parseConfigText(text, 'config/app.ini', {
    env: {},
    overrides: { session: { key_prefix: PREFIX }, redis_connection_pool: { default: { port: String(redis.port) } } },
  });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const sockets: WebSocket[] = [];
  const container = createKeepsakeContainer(config);
  try {
    const cookies: string[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const reply = await fetch(`${url}/api/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': AGENTS[i % AGENTS.length]! },
        body: JSON.stringify({ username: USER }),
      });
      cookies.push(reply.headers.getSetCookie()[0]!.split(';')[0]!);
    }
    for (const cookie of cookies.slice(0, ONLINE)) {
      const socket = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: { cookie } });
      await new Promise((resolve, reject) => socket.once('message', resolve).once('error', reject));
      sockets.push(socket);
    }
    const devices = container.resolve('devices');
    const sessions = container.resolve('sessionManager');
    // Wait until presence shows every socket (written one event-loop turn after the opens).
    for (let i = 0; i < 100 && (await devices.records(USER)).filter((d) => d.online).length < ONLINE; i++) await new Promise((r) => setTimeout(r, 20));
    const listed = await devices.records(USER);
    if (listed.length !== DEVICES || listed.filter((d) => d.online).length !== ONLINE) throw new Error(`expected ${DEVICES} devices, ${ONLINE} online; got ${listed.length}, ${listed.filter((d) => d.online).length}`);

    // Round trips: pool.run calls during one listing.
    const pool = devices.pool as unknown as { run: (...args: unknown[]) => Promise<unknown> };
    const run = pool.run.bind(pool);
    let runs = 0;
    pool.run = (...args: unknown[]) => {
      runs++;
      return run(...args);
    };
    const countRuns = async (fn: () => Promise<unknown>) => {
      runs = 0;
      await fn();
      return runs;
    };
    const commands = async (fn: () => Promise<unknown>) => {
      const before = await redis.totalCommands();
      await fn();
      return (await redis.totalCommands()) - before;
    };
    const listTrips = await countRuns(() => devices.records(USER));
    const listCommands = await commands(() => devices.records(USER));
    const idsTrips = await countRuns(() => sessions.userSessions(USER));
    const idsCommands = await commands(() => sessions.userSessions(USER));
    pool.run = run;

    const direct = await timed(ROUNDS, () => devices.records(USER));
    const ids = await timed(ROUNDS, () => sessions.userSessions(USER));
    const http = await timed(Math.min(ROUNDS, 200), () => fetch(`${url}/api/devices`, { headers: { cookie: cookies[0]! } }).then((r) => r.text()));

    const date = new Date().toISOString().slice(0, 10);
    const ms = (value: number) => value.toFixed(3);
    const report = `# Devices listing — ${date}

${DEVICES} sessions of one user (${ONLINE} with an open WebSocket), throwaway redis-server ${redis.port}
on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${ROUNDS} rounds after 20 warm-up rounds, one at a time.

| what | round trips | Redis commands | p50 ms | p95 ms | mean ms |
| --- | ---: | ---: | ---: | ---: | ---: |
| \`SessionManager.listDevices\` (Devices.records: index, presence, nodes, then one HMGET per session) | ${listTrips} | ${listCommands} | ${ms(direct.p50)} | ${ms(direct.p95)} | ${ms(direct.mean)} |
| \`SessionManager.userSessions\` (ids only: index, then one EXISTS per session), for comparison | ${idsTrips} | ${idsCommands} | ${ms(ids.p50)} | ${ms(ids.p95)} | ${ms(ids.mean)} |
| \`GET /api/devices\` over HTTP (session load + listing + JSON) | — | — | ${ms(http.p50)} | ${ms(http.p95)} | ${ms(http.mean)} |

Round trips are pool.run calls (each one tick of commands on one connection, one socket write).
The round trips do not grow with the number of sessions; the commands do (one HMGET each).
`;
    process.stdout.write(report);
    fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, `bench/results/devices-${date}.md`), report);
  } finally {
    for (const socket of sockets) socket.terminate();
    await container.dispose();
    await app.close();
    await redis.stop();
  }
}

await main();

// Notice benchmark: four demo app nodes on one Redis (or a 3-master Cluster), sockets spread over
// the nodes, writes to random sessions. Reports, per node, the session notices it received against the notices its
// own sockets need (writes to sessions with a socket on it). Counts, not times: deterministic on
// a noisy machine. Run by hand:
//
//   npx tsc -p tsconfig.json && node dist/bench/notices.js
//   NOTICES_SESSIONS=100 NOTICES_WRITES=1000 node dist/bench/notices.js      # smaller
//   NOTICES_REDIS=cluster node dist/bench/notices.js                          # a 3-master Cluster
//
// A throwaway redis-server (own port, no persistence), or with NOTICES_REDIS=cluster a throwaway
// 3-master Redis Cluster (test/support/redis-cluster.ts; the pool's `cluster` = its seed nodes);
// the four nodes run in this process (each its own app, pools and subscriber connection). What a node received is read from its
// `/metrics` (keepsake_session_notices_received_total). Four stand-in subscribers on the old
// broadcast channel `{key_prefix}events` count what each node received before per-session
// channels (every node heard every write there); on this build they hear nothing. On a Cluster
// the stand-ins connect to the masters in turn (classic pub/sub: a subscriber on any master hears
// every PUBLISH), and the report adds, per master, the PUBLISHes it ran, the publish messages it
// sent and received over the cluster bus, and the channels the app nodes' subscribers hold there.
// Results: stdout and bench/results/notices-<date>.md (notices-cluster-<date>.md on a Cluster).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { buildApp } from '../app/build-app.js';
import { parseConfigText } from '../src/index.js';
import { RedisClusterServers } from '../test/support/redis-cluster.js';
import { parseInfo, RedisServer } from '../test/support/redis-server.js';

const NODES = 4;
const SESSIONS = Number(process.env.NOTICES_SESSIONS ?? 400);
const WRITES = Number(process.env.NOTICES_WRITES ?? 4000);
const PARALLEL = 32;
const MODE = process.env.NOTICES_REDIS ?? 'single';
if (MODE !== 'single' && MODE !== 'cluster') throw new Error(`NOTICES_REDIS: expected single or cluster, got ${MODE}`);
const PREFIX = 'bench:notices:';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A seeded generator: the same sessions, sockets and writes on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
}

async function request(url: string, method: string, body?: unknown, cookie?: string): Promise<{ status: number; cookie?: string; text: string }> {
  const response = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie ? { cookie } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const set = response.headers.getSetCookie()[0];
  return { status: response.status, cookie: set?.split(';')[0], text: await response.text() };
}

async function received(url: string): Promise<number | null> {
  const text = (await request(`${url}/metrics`, 'GET')).text;
  const line = text.split('\n').find((row) => row.startsWith('keepsake_session_notices_received_total '));
  return line === undefined ? null : Number(line.split(' ')[1]);
}

function openSocket(url: string, cookie: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { headers: { cookie }, perMessageDeflate: false });
    socket.once('message', () => resolve(socket)); // hello
    socket.once('error', reject);
  });
}

async function inBatches<T>(items: T[], run: (item: T, index: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += PARALLEL) await Promise.all(items.slice(i, i + PARALLEL).map((item, j) => run(item, i + j)));
}

/** Per master: PUBLISH calls (inside the write functions too), cluster bus publish messages, pub/sub connections. */
interface MasterStats {
  port: number;
  publishes: number;
  busSent: number;
  busReceived: number;
  /** Channels held by each app subscriber connection on this master (CLIENT LIST `sub=`). */
  subscribers: number[];
}

async function masterStats(servers: RedisServer[]): Promise<MasterStats[]> {
  return Promise.all(
    servers.map(async (server) => {
      const info = parseInfo(String(await server.process.command(['CLUSTER', 'INFO'])));
      const list = String(await server.process.command(['CLIENT', 'LIST']));
      const subscribers = list
        .split('\n')
        .filter((line) => / name=\S*keepsake:\S*subscriber /.test(line))
        .map((line) => Number(/ sub=(\d+)/.exec(line)?.[1] ?? 0))
        .filter((sub) => sub > 0);
      return {
        port: server.port,
        publishes: (await server.commandStats()).get('publish') ?? 0,
        busSent: Number(info.get('cluster_stats_messages_publish_sent') ?? 0),
        busReceived: Number(info.get('cluster_stats_messages_publish_received') ?? 0),
        subscribers,
      };
    }),
  );
}

async function main(): Promise<void> {
  const cluster = MODE === 'cluster' ? await RedisClusterServers.start() : null;
  const redis = cluster === null ? await RedisServer.start() : null;
  // Where the stand-ins connect: the one server, or the masters in turn.
  const servers = cluster?.servers ?? [redis!];
  const pool = cluster === null ? { port: String(redis!.port), max: '8' } : { cluster: cluster.clusterSpec(), max: '8' };
  const text = fs.readFileSync(path.join(ROOT, 'config/app.ini'), 'utf8');
  const apps = [];
  const urls: string[] = [];
  for (let n = 0; n < NODES; n++) {
    const config = parseConfigText(text, 'config/app.ini', {
      env: {},
      overrides: { session: { key_prefix: PREFIX }, redis_connection_pool: { default: pool } },
    });
    const app = await buildApp(config);
    await app.listen({ host: '127.0.0.1', port: 0 });
    apps.push(app);
    urls.push(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
  }
  // A cold Cluster connection (slot map, three masters) can outlast acquire_timeout_ms: start
  // once every node is ready (as test/cluster/redis-cluster.test.ts does).
  for (const url of urls) {
    for (let attempt = 0; (await fetch(`${url}/ready`)).status !== 200; attempt++) {
      if (attempt >= 50) throw new Error(`${url} never became ready`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  // Stand-ins for the nodes of the old design: each heard every notice on `{prefix}events`.
  const broadcast = Array.from({ length: NODES }, () => 0);
  const standIns = await Promise.all(
    broadcast.map(async (_, n) => {
      const client = servers[n % servers.length]!.client({ connectionName: 'bench:stand-in' });
      client.on('message', () => broadcast[n]!++);
      await client.subscribe(`${PREFIX}events`);
      return client;
    }),
  );

  const pick = random(42);
  const cookies: string[] = [];
  await inBatches(Array.from({ length: SESSIONS }), async (_, i) => {
    const reply = await request(`${urls[i % NODES]}/api/name`, 'PUT', { name: `s${i}` });
    if (reply.status !== 200 || reply.cookie === undefined) throw new Error(`session ${i}: ${reply.status}`);
    cookies[i] = reply.cookie;
  });
  // One socket per session, on a random node.
  const home = cookies.map(() => Math.floor(pick() * NODES));
  const sockets: WebSocket[] = [];
  await inBatches(cookies, async (cookie, i) => {
    sockets.push(await openSocket(urls[home[i]!]!, cookie));
  });

  const before = await Promise.all(urls.map(received));
  const mastersBefore = cluster === null ? [] : await masterStats(cluster.servers);
  const broadcastBefore = [...broadcast];
  const needed = Array.from({ length: NODES }, () => 0);
  const writes = Array.from({ length: WRITES }, () => ({ session: Math.floor(pick() * SESSIONS), via: Math.floor(pick() * NODES) }));
  const began = Date.now();
  await inBatches(writes, async ({ session, via }, i) => {
    const reply = await request(`${urls[via]}/api/name`, 'PUT', { name: `w${i}` }, cookies[session]);
    if (reply.status !== 200) throw new Error(`write ${i}: ${reply.status}`);
    needed[home[session]!]!++;
  });
  const seconds = (Date.now() - began) / 1000;
  // Let the last notices land (they are published in the write's own atomic step).
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await Promise.all(urls.map(received));
  const mastersAfter = cluster === null ? [] : await masterStats(cluster.servers);

  const rows = urls.map((_, n) => {
    const got = after[n] === null || before[n] === null ? null : after[n]! - before[n]!;
    return { node: n + 1, sockets: home.filter((h) => h === n).length, needed: needed[n]!, received: got, broadcast: broadcast[n]! - broadcastBefore[n]! };
  });
  const where = cluster === null ? 'one redis-server' : `a ${cluster.servers.length}-master Redis Cluster`;
  const lines = [
    `# Notices per node${cluster === null ? '' : ', Redis Cluster'} — ${new Date().toISOString().slice(0, 10)}`,
    '',
    `${NODES} app nodes (one process) on ${where}, ${SESSIONS} sessions with one socket each on a random node,`,
    `${WRITES} writes (PUT /api/name) to random sessions through random nodes, ${PARALLEL} at a time, in ${seconds.toFixed(1)} s`,
    `(${Math.round(WRITES / seconds)} writes/s). Counts are deterministic (seeded); per second = count / ${seconds.toFixed(1)} s.`,
    '',
    '| node | sockets | notices its sockets need | received, per-session channels (this build) | received on `{prefix}events` (broadcast, as on main) |',
    '|---|---|---|---|---|',
    ...rows.map((row) => `| ${row.node} | ${row.sockets} | ${row.needed} (${(row.needed / seconds).toFixed(0)}/s) | ${row.received ?? 'n/a'}${row.received === null ? '' : ` (${(row.received / seconds).toFixed(0)}/s)`} | ${row.broadcast} (${(row.broadcast / seconds).toFixed(0)}/s) |`),
    '',
  ];
  if (cluster !== null) {
    lines.push(
      'Per master, during the writes: the PUBLISHes it ran (the write functions of its slots), the publish',
      'messages it sent and received over the cluster bus (classic pub/sub: every PUBLISH goes to every',
      'other node), and the channels held by the app subscriber connections on it (CLIENT LIST `sub=`,',
      'one number per connection, at the end).',
      '',
      '| master | PUBLISH run | bus publish messages sent | bus publish messages received | app subscribers here (channels each) |',
      '|---|---|---|---|---|',
      ...mastersAfter.map((master, m) => {
        const was = mastersBefore[m]!;
        return `| ${m + 1} (:${master.port}) | ${master.publishes - was.publishes} | ${master.busSent - was.busSent} | ${master.busReceived - was.busReceived} | ${master.subscribers.length === 0 ? 'none' : master.subscribers.join(', ')} |`;
      }),
      '',
    );
  }
  const report = lines.join('\n');
  console.log(report);
  const out = path.join(ROOT, 'bench/results', `notices${cluster === null ? '' : '-cluster'}-${new Date().toISOString().slice(0, 10)}.md`);
  if (process.env.NOTICES_WRITE_RESULT !== '0') fs.writeFileSync(out, report);

  for (const socket of sockets) socket.terminate();
  await Promise.all(standIns.map((client) => client.quit()));
  await Promise.all(apps.map((app) => app.close()));
  await (cluster ?? redis!).stop();
}

await main();

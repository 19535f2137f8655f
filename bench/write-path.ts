// Write path with and without sockets on the session (issue 15: "a session change is published
// only where it has sockets"). Each session's notices go to its own channel (src/websocket/
// session-channels.ts), which only nodes holding its sockets subscribe to: a write to a session
// nobody watches is a PUBLISH that Redis delivers to no one. Run by hand:
//
//   npx tsc -p tsconfig.json && node dist/bench/write-path.js      (ROUNDS=2000)
//
// A throwaway redis-server, the demo app in this process, real HTTP and `ws` clients. Reports,
// per PUT /api/name: time, Redis CPU per FCALL (INFO commandstats: the load and the write, averaged),
// the PUBLISH's receivers (PUBSUB NUMSUB of the session's channel) and the socket messages.
// Results: stdout and bench/results/write-path-<date>.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { buildApp } from '../app/build-app.js';
import { parseConfigText } from '../src/index.js';
import { RedisServer } from '../test/support/redis-server.js';

const ROUNDS = Number(process.env.ROUNDS ?? 2000);
const PREFIX = 'bench:write-path:';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const inspect = redis.client();
  const text = fs.readFileSync(path.join(ROOT, 'config/app.ini'), 'utf8');
  const config = parseConfigText(text, 'config/app.ini', { env: {}, overrides: { session: { key_prefix: PREFIX }, redis_connection_pool: { default: { port: String(redis.port) } } } });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const rows: string[] = [];
  try {
    for (const watched of [false, true]) {
      const first = await fetch(`${url}/api/session`);
      const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
      const id = decodeURIComponent(cookie.split('=')[1]!).split('.')[0]!;
      let received = 0;
      let socket: WebSocket | undefined;
      if (watched) {
        socket = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: { cookie } });
        await new Promise((resolve, reject) => socket!.once('message', resolve).once('error', reject));
        socket.on('message', () => received++);
      }
      const subscribers = ((await inspect.pubsub('NUMSUB', PREFIX + id)) as [string, number])[1];
      const put = (i: number) => fetch(`${url}/api/name`, { method: 'PUT', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ name: `n${i}` }) }).then((r) => r.text());
      for (let i = 0; i < 50; i++) await put(i); // warm-up
      await inspect.config('RESETSTAT');
      const began = performance.now();
      for (let i = 0; i < ROUNDS; i++) await put(i);
      const ms = (performance.now() - began) / ROUNDS;
      await new Promise((resolve) => setTimeout(resolve, 300)); // the last pushes
      const stats = String(await inspect.info('commandstats'));
      const usec = Number(/cmdstat_fcall:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(stats)?.[1] ?? NaN);
      rows.push(`| ${watched ? 'one socket on the session' : 'no socket'} | ${subscribers} | ${ms.toFixed(3)} | ${usec.toFixed(2)} | ${watched ? (received / ROUNDS).toFixed(2) : '—'} |`);
      socket?.terminate();
    }
  } finally {
    inspect.disconnect();
    await app.close();
    await redis.stop();
  }
  const date = new Date().toISOString().slice(0, 10);
  const report = `# Write path with and without sockets — ${date}

\`PUT /api/name\`, ${ROUNDS} in a row after 50 warm-up, one client; throwaway redis-server on
${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}. Single client, so the times are latency, not throughput.

| session | subscribers of its channel | ms per write | Redis µs per FCALL (the load and the write) | socket messages per write |
| --- | ---: | ---: | ---: | ---: |
${rows.join('\n')}

With no socket, the write's PUBLISH reaches no node (0 subscribers): no node decodes a notice.
`;
  process.stdout.write(report);
  fs.writeFileSync(path.join(ROOT, `bench/results/write-path-${date}.md`), report);
}

await main();

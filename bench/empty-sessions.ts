// Empty sessions: what 100k cookie-less GETs of a route that starts the session cost Redis.
//
//   npx tsc -p tsconfig.json && node dist/bench/empty-sessions.js        # ~2 minutes
//   EMPTY_REQUESTS=20000 node dist/bench/empty-sessions.js
//
// For each setting a throwaway redis-server (no persistence, 127.0.0.1) and the demo app in this
// process; autocannon sends EMPTY_REQUESTS cookie-less GET /api/session (a crawler, a health
// probe on the wrong path). Redis `INFO memory` used_memory and DBSIZE are read before, right
// after, and once keys that live empty_session_lifespan have expired. Two settings:
//
// - `empty_session_lifespan = 0`: every empty session lives cookie_lifespan (86400 s), as before
//   the setting existed;
// - `empty_session_lifespan = 10`: a scaled-down stand-in for the default 600 s, so the run can
//   wait for the keys to expire.
//
// Keys that live empty_session_lifespan expire during a run longer than that: "keys at its end"
// are those of its last seconds. Prints a markdown table (docs/benchmarks.md, "Empty sessions").
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { buildApp } from '../app/build-app.js';
import { parseConfigText } from '../src/index.js';
import { RedisServer, sleep } from '../test/support/redis-server.js';

const REQUESTS = Number(process.env.EMPTY_REQUESTS ?? 100_000);
const SHORT_S = 10;

interface Row {
  setting: string;
  keysAfter: number;
  usedBefore: number;
  usedAfter: number;
  ttlSample: number;
  seconds: number;
  keysLater: number;
  usedLater: number;
}

async function usedMemory(server: RedisServer): Promise<number> {
  const info = String(await server.process.command(['INFO', 'memory']));
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

async function dbsize(server: RedisServer): Promise<number> {
  return Number(await server.process.command(['DBSIZE']));
}

async function measure(emptyLifespan: number): Promise<Row> {
  const server = await RedisServer.start();
  try {
    const text = `[session]\nkey_prefix = bench:\nempty_session_lifespan = ${emptyLifespan}\n[redis_connection_pool.default]\nport = ${server.port}\n`;
    const app = await buildApp(parseConfigText(text, 'bench.ini', { env: {} }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/session`;
      await fetch(url); // connects the pool and loads the function library before the baseline
      await server.process.command(['FLUSHDB']);
      const usedBefore = await usedMemory(server);
      const began = Date.now();
      const result = await autocannon({ url, connections: 32, amount: REQUESTS });
      const seconds = (Date.now() - began) / 1000;
      if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx replies, ${result.errors} errors`);
      const keysAfter = await dbsize(server);
      const usedAfter = await usedMemory(server);
      const sample = await server.process.command(['RANDOMKEY']);
      const ttlSample = sample === null ? -2 : Number(await server.process.command(['PTTL', String(sample)]));
      // Wait past the short lifespan, and for Redis's active expiry to reclaim the keys.
      const waitUntil = Date.now() + (SHORT_S + 50) * 1000;
      await sleep((SHORT_S + 1) * 1000);
      while (emptyLifespan > 0 && (await dbsize(server)) > 0 && Date.now() < waitUntil) await sleep(500);
      return {
        setting: `empty_session_lifespan = ${emptyLifespan}`,
        keysAfter,
        usedBefore,
        usedAfter,
        ttlSample,
        seconds,
        keysLater: await dbsize(server),
        usedLater: await usedMemory(server),
      };
    } finally {
      await app.close();
    }
  } finally {
    await server.stop();
  }
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

const rows: Row[] = [];
for (const lifespan of [0, SHORT_S]) rows.push(await measure(lifespan));
console.log(`${REQUESTS} cookie-less GET /api/session, cookie_lifespan = 86400\n`);
console.log(`| setting | run | keys at its end | used_memory before → at the end | per key | PTTL of a key | keys / used_memory ${SHORT_S + 1}+ s later |`);
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const row of rows) {
  console.log(
    `| \`${row.setting}\` | ${row.seconds.toFixed(0)} s, ${Math.round(REQUESTS / row.seconds)} req/s | ${row.keysAfter} | ${mb(row.usedBefore)} → ${mb(row.usedAfter)} MB | ${Math.round((row.usedAfter - row.usedBefore) / Math.max(1, row.keysAfter))} B | ${Math.round(row.ttlSample / 1000)} s | ${row.keysLater} / ${mb(row.usedLater)} MB |`,
  );
}
process.exit(0);

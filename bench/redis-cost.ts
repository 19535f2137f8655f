// What Redis spends on each command keepsake sends on its hot routes, against the peer's
// GET + SET, on a throwaway redis-server with nothing else running. Run by hand:
//
//   npx tsc -p tsconfig.json && node dist/bench/redis-cost.js      (CALLS=20000 ROUNDS=3)
//
// Two measures per command: INFO commandstats `usec` (time inside the command; for FCALL it
// includes the commands the function runs, which commandstats also counts on their own lines),
// and the server's own CPU (INFO cpu, user + sys: parsing, replies and socket I/O included),
// both divided by the calls. Commands go in pipelines of 50, as a loaded app node sends them.
// Results: stdout (markdown) and bench/results/redis-cost-<date>.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { FUNCTION, LIBRARY_SOURCE, writeHeader } from '../src/redis/redis-functions.js';
import { RedisServer } from '../test/support/redis-server.js';

const CALLS = Number(process.env.CALLS ?? 20000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BATCH = 50;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const KEY = 'bench:cost:0123456789012345678901234567890123456789012';

interface Cost { commandUsec: number; cpuUsec: number }

function info(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

/** usec of the commands named (the ones the client sent: a function's inner commands are in fcall's own usec). */
async function snapshot(client: Redis, sent: string[]): Promise<{ usec: number; cpu: number }> {
  const stats = info(await client.info('commandstats'));
  let usec = 0;
  for (const name of sent) usec += Number(/usec=(\d+)/.exec(stats.get(`cmdstat_${name}`) ?? '')?.[1] ?? 0);
  const cpu = info(await client.info('cpu'));
  return { usec, cpu: (Number(cpu.get('used_cpu_user')) + Number(cpu.get('used_cpu_sys'))) * 1e6 };
}

/** Runs `send` CALLS times in pipelines of BATCH, returns Redis's cost per call. */
async function measure(client: Redis, sent: string[], send: (pipeline: ReturnType<Redis['pipeline']>, i: number) => void): Promise<Cost> {
  await client.config('RESETSTAT');
  const before = await snapshot(client, sent);
  for (let i = 0; i < CALLS; i += BATCH) {
    const pipeline = client.pipeline();
    for (let j = i; j < Math.min(i + BATCH, CALLS); j++) send(pipeline, j);
    await pipeline.exec();
  }
  const after = await snapshot(client, sent);
  return { commandUsec: (after.usec - before.usec) / CALLS, cpuUsec: (after.cpu - before.cpu) / CALLS };
}

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const client = redis.client();
  await client.function('LOAD', 'REPLACE', LIBRARY_SOURCE);
  const counter = Buffer.from([0xcd, 0x30, 0x39]); // msgpack 12345, as the /write route's counter
  const session = (): Promise<unknown> =>
    client.hset(KEY, 'm:c', String(Date.now()), 'm:s', '3', 'm:v', 'a1;', 'd:counter', counter);
  const blob = 'x'.repeat(150); // the peer's session: ~150 bytes of JSON
  const cases: { name: string; what: string; sent: string[]; send: (p: ReturnType<Redis['pipeline']>, i: number) => void }[] = [
    { name: 'keepsake read', what: 'HGETALL (a read within ttl_refresh_slack)', sent: ['hgetall'], send: (p) => p.hgetallBuffer(KEY) },
    { name: 'keepsake read + refresh', what: 'HGETALL + PEXPIRE', sent: ['hgetall', 'pexpire'], send: (p) => p.hgetallBuffer(KEY).pexpire(KEY, 86_400_000) },
    {
      name: 'keepsake write',
      what: `FCALL ${FUNCTION.write}: one d: field (HMGET, HSTRLEN, HSET, PUBLISH inside)`,
      sent: ['fcall'],
      send: (p, i) => p.fcall(FUNCTION.write, 1, KEY, writeHeader({ maxBytes: '4194304', opId: `op${i}x` }), 'd:counter', counter),
    },
    { name: 'peer read or write', what: 'GET + SET EX of a 150-byte string (connect-redis)', sent: ['get', 'set'], send: (p) => p.getBuffer('bench:cost:peer').set('bench:cost:peer', blob, 'EX', 86_400) },
    { name: 'no-op function', what: 'FCALL of a function that returns at once', sent: ['fcall'], send: (p) => p.fcall('ks_cost_noop', 1, KEY) },
  ];
  await client.function('LOAD', 'REPLACE', "#!lua name=ks_cost\nredis.register_function('ks_cost_noop', function(keys, args) return 1 end)");
  const results = new Map<string, Cost[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      await session();
      const cost = await measure(client, c.sent, c.send);
      results.set(c.name, [...(results.get(c.name) ?? []), cost]);
    }
  }
  await client.quit();
  await redis.stop();
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lines = [
    `# Redis's cost per command — ${new Date().toISOString().slice(0, 10)}`,
    '',
    `${CALLS} calls × ${ROUNDS} rounds per case, pipelines of ${BATCH}, one client; throwaway redis-server on ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}. Medians of the rounds.`,
    '',
    '| case | commands | commandstats µs per call | Redis CPU µs per call (INFO cpu) |',
    '| --- | --- | ---: | ---: |',
  ];
  for (const c of cases) {
    const rs = results.get(c.name)!;
    lines.push(`| ${c.name} | ${c.what} | ${median(rs.map((r) => r.commandUsec)).toFixed(2)} | ${median(rs.map((r) => r.cpuUsec)).toFixed(2)} |`);
  }
  const text = lines.join('\n') + '\n';
  console.log(text);
  const file = path.join(ROOT, 'bench/results', `redis-cost-${new Date().toISOString().slice(0, 10)}.md`);
  if (process.env.WRITE !== '0') fs.writeFileSync(file, text);
}

await main();

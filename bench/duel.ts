// A/B of two server builds under load at the same time, on one throwaway Redis.
//
//   node dist/bench/duel.js <a> <b> [--route=/read] [--seconds=6] [--rounds=5]
//   node dist/bench/duel.js bench/servers/keepsake.js /tmp/before/bench/servers/keepsake.js
//   node dist/bench/duel.js 'KEEPSAKE_X=1 bench/servers/keepsake.js' bench/servers/keepsake.js
//
// Each side is a server file (any target of bench/servers/), optionally preceded by NAME=value
// environment settings. On a shared 2-core machine one target's req/s swings by ±30 % from run to
// run; two targets loaded side by side share every slow moment, so the ratio of their req/s is
// steady to a few percent. That is what this prints: A/B per round, and the median. Use it to
// decide whether a change pays; use run.ts for the numbers against the peers.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import autocannon from 'autocannon';
import { RedisServer, freePort, sleep } from '../test/support/redis-server.js';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const sides = argv.filter((a) => !a.startsWith('--'));
if (sides.length !== 2) {
  console.error('usage: node dist/bench/duel.js <a> <b> [--route=/read] [--seconds=6] [--rounds=5]');
  process.exit(2);
}
const ROUTE = option('route', '/read');
const SECONDS = Number(option('seconds', '6'));
const ROUNDS = Number(option('rounds', '5'));
async function waitFor(port: number, urlPath: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(100)) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}${urlPath}`)).ok) return;
    } catch {
      // not listening yet
    }
  }
  throw new Error(`nothing answers on port ${port}`);
}

/** `NAME=value … file` → a server process on `port`. */
function startServer(side: string, port: number, redisPort: number): ChildProcess {
  const words = side.split(/\s+/);
  const file = words.pop()!;
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), REDIS_PORT: String(redisPort), KEY_PREFIX: `duel:${port}:` };
  for (const setting of words) {
    const at = setting.indexOf('=');
    env[setting.slice(0, at)] = setting.slice(at + 1);
  }
  return spawn(process.execPath, [path.resolve(file)], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A session for the load: the cookie of a first write. */
async function sessionCookie(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/write`);
  return (response.headers.get('set-cookie') ?? '').split(';')[0]!;
}

function load(port: number, cookie: string, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    autocannon({ url: `http://127.0.0.1:${port}${ROUTE}`, connections: 50, duration: seconds, headers: { cookie } }, (error, result) =>
      error ? reject(error) : resolve(result.requests.total / seconds),
    );
  });
}

const redis = await RedisServer.start();
const redisPort = redis.port;
const ratios: number[] = [];
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const ports = [await freePort(), await freePort()] as const;
    const servers = [startServer(sides[0]!, ports[0], redisPort), startServer(sides[1]!, ports[1], redisPort)];
    try {
      await Promise.all(ports.map((port) => waitFor(port, '/plain')));
      const cookies = await Promise.all(ports.map(sessionCookie));
      await Promise.all(ports.map((port, i) => load(port, cookies[i]!, 2))); // warm up both
      const [a, b] = await Promise.all(ports.map((port, i) => load(port, cookies[i]!, SECONDS)));
      ratios.push(a! / b!);
      console.log(`round ${round}: A ${Math.round(a!)} req/s, B ${Math.round(b!)} req/s, A/B ${(a! / b!).toFixed(3)}`);
    } finally {
      for (const server of servers) server.kill('SIGINT');
      await sleep(300);
    }
  }
  ratios.sort((x, y) => x - y);
  console.log(`${ROUTE}: median A/B ${ratios[Math.floor(ratios.length / 2)]!.toFixed(3)} over ${ROUNDS} rounds`);
} finally {
  await redis.stop();
}

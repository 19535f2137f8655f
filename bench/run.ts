// Benchmark runner: keepsake vs. its peers. See bench/README.md.
//
//   npm run bench                      # 3 rounds x 5 s per measurement (~11 min)
//   node dist/bench/run.js --quick     # 1 round x 2 s, smoke test
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 node dist/bench/run.js
//   node dist/bench/run.js --targets=bare,fastify-session
//
// One throwaway redis-server (own port, no persistence) is started for the run;
// every target runs as its own node process against it, each with its own key
// prefix. Targets are started once, warmed, then measured in interleaved rounds
// (target order rotated every round), each measurement in slices taken in turn with
// the other targets' (BENCH_SLICES). Everything is stopped at the end.

import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ------------------------------------------------------------------ config --

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const envNum = (name: string, def: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return n;
};
const ROUNDS = QUICK ? 1 : Math.round(envNum('BENCH_ROUNDS', 3));
const SECONDS = QUICK ? 2 : envNum('BENCH_SECONDS', 5);
// Each measurement's seconds are cut into slices taken in turn with the other targets', so a slow
// moment of a shared machine falls on every target of the round, not on one.
const SLICES = QUICK ? 1 : Math.round(envNum('BENCH_SLICES', 5));
const WARMUP_SECONDS = envNum('BENCH_WARMUP', 1);
const CONNECTIONS = Math.round(envNum('BENCH_CONNECTIONS', 50));
const LOST_TRIES = Math.round(envNum('BENCH_LOST_TRIES', 15));
const LOST_WRITERS = 20;
const BLOB_SIZES_KB = [1, 10, 100];

const targetsArg = argv.find((a) => a.startsWith('--targets='))?.slice('--targets='.length) ?? process.env.BENCH_TARGETS;

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bench', 'servers'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}
const ROOT = findRoot();
const SERVERS_DIR = path.join(ROOT, 'bench', 'servers');
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

interface TargetDef {
  name: string;
  label: string;
  file: string;
  prefix: string;
  session: boolean;
  /** Only run when named in --targets / BENCH_TARGETS. */
  optIn?: boolean;
}

const ALL_TARGETS: TargetDef[] = [
  { name: 'bare', label: 'bare fastify', file: 'bare.js', prefix: 'bench:bare:', session: false },
  { name: 'keepsake', label: 'keepsake', file: 'keepsake.js', prefix: 'bench:ks:', session: true },
  { name: 'fastify-session', label: '@fastify/session + connect-redis', file: 'fastify-session.js', prefix: 'bench:fs:', session: true },
  { name: 'express-session', label: 'express-session + connect-redis', file: 'express-session.js', prefix: 'bench:es:', session: true },
  { name: 'bare-express', label: 'bare express', file: 'bare-express.js', prefix: 'bench:bx:', session: false, optIn: true },
];
const BASELINE = 'bare';
const PEER_BASELINE = 'fastify-session';

interface Scenario {
  id: string;
  title: string;
  /** Route measured. `/set` gets a fresh value on every request. */
  route: '/plain' | '/read' | '/write' | '/set';
  /** Session prepared with /blob?kb=N before measuring. */
  blobKb?: number;
}

const ALL_SCENARIOS: Scenario[] = [
  { id: 'plain', title: 'GET /plain (with session cookie)', route: '/plain' },
  { id: 'read', title: 'GET /read', route: '/read' },
  { id: 'write', title: 'GET /write', route: '/write' },
  ...BLOB_SIZES_KB.flatMap((kb): Scenario[] => [
    { id: `set@${kb}KB`, title: `GET /set (one small key) on a ${kb} KB session`, route: '/set', blobKb: kb },
    { id: `read@${kb}KB`, title: `GET /read on a ${kb} KB session`, route: '/read', blobKb: kb },
  ]),
];
/** `--scenarios=read,write` (or BENCH_SCENARIOS) measures only those, to study one route; a partial run skips the lost-update test. */
const scenariosArg = argv.find((a) => a.startsWith('--scenarios='))?.slice('--scenarios='.length) ?? process.env.BENCH_SCENARIOS;
const SCENARIOS = scenariosArg ? ALL_SCENARIOS.filter((s) => scenariosArg.split(',').includes(s.id)) : ALL_SCENARIOS;
if (SCENARIOS.length === 0) throw new Error(`--scenarios names none of ${ALL_SCENARIOS.map((s) => s.id).join(', ')}`);

// ------------------------------------------------------------------ helpers --

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.error(...a);

function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function httpGet(port: number, urlPath: string, cookie?: string, agent?: http.Agent): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'GET',
        headers: cookie ? { cookie } : {},
        agent: agent ?? false,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${urlPath}`)));
    req.on('error', reject);
    req.end();
  });
}

function cookieFrom(res: HttpResult): string | undefined {
  const sc = res.headers['set-cookie'];
  if (!sc || sc.length === 0) return undefined;
  return sc.map((c) => c.split(';', 1)[0]!.trim()).join('; ');
}

function json(res: HttpResult, what: string): any {
  if (res.status !== 200) throw new Error(`${what}: HTTP ${res.status} ${res.body.slice(0, 200)}`);
  try {
    return JSON.parse(res.body);
  } catch {
    throw new Error(`${what}: not JSON: ${res.body.slice(0, 200)}`);
  }
}

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* keep 100 */
}

/** utime+stime of a process (all threads), in ms. */
function procCpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1000) / CLK_TCK;
}

// -------------------------------------------------------------------- redis --

interface RedisProc {
  port: number;
  proc: ChildProcess;
  client: Redis;
  version: string;
}

async function startRedis(): Promise<RedisProc> {
  const port = await freePort();
  if (port === 6379) throw new Error('refusing to use 6379');
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', os.tmpdir(), '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {});
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`);
    try {
      await client.connect();
      await client.ping();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on ${port}: ${stderr}`);
      client.disconnect();
      await sleep(100);
    }
  }
  const server = parseInfo(await client.info('server'));
  return { port, proc, client, version: server.get('redis_version') ?? '?' };
}

function parseInfo(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

interface RedisSnap {
  commands: number;
  netIn: number;
  netOut: number;
  cpuSec: number;
  cmd: Map<string, number>;
  /** Bytes of the runner's own INFO requests so far, this one included (Redis counts input on read). */
  ownInCum: number;
  /** Bytes of the runner's own INFO replies before this one (this reply is sent after the counters were read). */
  ownOutCumBefore: number;
}

const INFO_ARGS = ['INFO', 'stats', 'cpu', 'commandstats'];
const INFO_REQUEST_BYTES = Buffer.byteLength(`*${INFO_ARGS.length}\r\n` + INFO_ARGS.map((a) => `$${a.length}\r\n${a}\r\n`).join(''));
let ownIn = 0;
let ownOut = 0;

async function redisSnap(client: Redis): Promise<RedisSnap> {
  const text = (await client.call(INFO_ARGS[0]!, ...INFO_ARGS.slice(1))) as string;
  ownIn += INFO_REQUEST_BYTES;
  const ownOutCumBefore = ownOut;
  const len = Buffer.byteLength(text);
  ownOut += `$${len}\r\n`.length + len + 2;
  const m = parseInfo(text);
  const cmd = new Map<string, number>();
  for (const [k, v] of m) {
    if (!k.startsWith('cmdstat_')) continue;
    const calls = /calls=(\d+)/.exec(v);
    if (calls) cmd.set(k.slice('cmdstat_'.length), Number(calls[1]));
  }
  return {
    commands: Number(m.get('total_commands_processed') ?? 0),
    netIn: Number(m.get('total_net_input_bytes') ?? 0),
    netOut: Number(m.get('total_net_output_bytes') ?? 0),
    cpuSec: Number(m.get('used_cpu_sys') ?? 0) + Number(m.get('used_cpu_user') ?? 0),
    cmd,
    ownInCum: ownIn,
    ownOutCumBefore,
  };
}

// ------------------------------------------------------------------ targets --

interface RunningTarget {
  def: TargetDef;
  port: number;
  proc: ChildProcess;
  pid: number;
  output: string[];
}

interface TargetStatus {
  name: string;
  label: string;
  status: 'ok' | 'missing' | 'broken';
  reason?: string;
}

async function startTarget(def: TargetDef, redisPort: number): Promise<RunningTarget> {
  const port = await freePort();
  const output: string[] = [];
  const proc = spawn(process.execPath, [path.join(SERVERS_DIR, def.file)], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), REDIS_PORT: String(redisPort), KEY_PREFIX: def.prefix, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line.trim()) output.push(line);
    if (output.length > 50) output.splice(0, output.length - 50);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const t: RunningTarget = { def, port, proc, pid: proc.pid ?? -1, output };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`exited with ${proc.exitCode ?? proc.signalCode}: ${output.slice(-5).join(' | ')}`);
    }
    try {
      const r = await httpGet(port, '/plain');
      if (r.status === 200) return t;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      await stopProc(proc);
      throw new Error(`did not answer GET /plain within 20 s: ${output.slice(-5).join(' | ')}`);
    }
    await sleep(100);
  }
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

/** Functional check of a target's routes before measuring it. */
async function checkTarget(t: RunningTarget): Promise<void> {
  const p = t.port;
  const w1 = await httpGet(p, '/write');
  const c1 = json(w1, '/write #1');
  if (!t.def.session) return;
  const cookie = cookieFrom(w1);
  if (!cookie) throw new Error('first /write set no cookie');
  if (c1.counter !== 1) throw new Error(`first /write returned ${w1.body}`);
  const c2 = json(await httpGet(p, '/write', cookie), '/write #2');
  if (c2.counter !== 2) throw new Error(`second /write returned counter ${c2.counter}`);
  const r = json(await httpGet(p, '/read', cookie), '/read');
  if (r.counter !== 2) throw new Error(`/read returned counter ${r.counter}`);
  json(await httpGet(p, '/set?k=probe&v=x', cookie), '/set');
  json(await httpGet(p, '/blob?kb=2', cookie), '/blob');
  const d = json(await httpGet(p, '/dump', cookie), '/dump');
  if (d?.data?.probe !== 'x' || d?.data?.counter !== 2 || d?.blobLength !== 2048 || 'blob' in (d?.data ?? {})) {
    throw new Error(`/dump returned ${JSON.stringify(d).slice(0, 200)}`);
  }
}

/** A fresh session for one measurement: /write creates it, /blob sizes it. */
async function freshSession(t: RunningTarget, blobKb?: number): Promise<string> {
  const w = await httpGet(t.port, '/write');
  json(w, '/write');
  const cookie = cookieFrom(w) ?? 'sid=bench-no-session';
  if (blobKb !== undefined) {
    const b = json(await httpGet(t.port, `/blob?kb=${blobKb}`, cookie), '/blob');
    if (b.blobLength !== blobKb * 1024) throw new Error(`/blob returned ${JSON.stringify(b)}`);
    if (t.def.session) {
      const d = json(await httpGet(t.port, '/dump', cookie), '/dump');
      if (d.blobLength !== blobKb * 1024) throw new Error(`session blob not stored: ${JSON.stringify(d).slice(0, 200)}`);
    }
  }
  return cookie;
}

// ---------------------------------------------------------------- measuring --

interface Measurement {
  round: number;
  scenario: string;
  target: string;
  /** autocannon's whole run. */
  seconds: number;
  /** The measuring window inside it. */
  windowSeconds: number;
  /** Responses in the window: the divisor of every per-request cost. */
  requests: number;
  totalResponses: number;
  /** requests / windowSeconds */
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  cpuMsPerReq: number;
  redisCmdsPerReq: number;
  redisBytesInPerReq: number;
  redisBytesOutPerReq: number;
  redisCpuUsPerReq: number;
  redisCmdMix: Record<string, number>;
}

interface Cannon {
  instance: autocannon.Instance;
  done: Promise<autocannon.Result>;
  /** Responses received so far. */
  responses(): number;
}

function startAutocannon(port: number, scenario: Scenario, cookie: string, seconds: number): Cannon {
  const opts: autocannon.Options = {
    url: `http://127.0.0.1:${port}${scenario.route}`,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { cookie },
  };
  if (scenario.route === '/set') {
    // A new value every request, so every request is a real modification.
    // A prebuilt cycle of values would not do: every connection walks it in lockstep,
    // so many requests would write the value already stored, which express-session
    // and keepsake rightly skip. setupRequest costs autocannon some CPU per request
    // (it lowers the bare target's /set numbers by ~15-30%), the same for every target.
    let n = 0;
    opts.requests = [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/set?k=small&v=${++n}` }) }];
  }
  let count = 0;
  let resolveDone!: (r: autocannon.Result) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<autocannon.Result>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const instance = autocannon(opts, (err, result) => (err ? rejectDone(err) : resolveDone(result)));
  instance.on('response', () => {
    count++;
  });
  return { instance, done, responses: () => count };
}

/**
 * Wait until Redis sees no more traffic (at most 3 s): the tail of the previous
 * measurement (requests in flight when its load stopped) must not land in the next.
 */
async function quiesce(redis: Redis): Promise<RedisSnap> {
  const deadline = Date.now() + 3000;
  let prev = await redisSnap(redis);
  for (;;) {
    await sleep(150);
    const cur = await redisSnap(redis);
    const infoCalls = (cur.cmd.get('info') ?? 0) - (prev.cmd.get('info') ?? 0);
    if (cur.commands - prev.commands - infoCalls === 0 || Date.now() > deadline) return cur;
    prev = cur;
  }
}

interface WindowEdge {
  /** Responses at that moment (mean of before and after the INFO round trip). */
  responses: number;
  /** performance.now(), likewise. */
  at: number;
  cpuMs: number;
  redis: RedisSnap;
}

async function edge(c: Cannon, pid: number, redis: Redis): Promise<WindowEdge> {
  const n0 = c.responses();
  const t0 = performance.now();
  const cpuMs = procCpuMs(pid);
  const snap = await redisSnap(redis);
  return { responses: (n0 + c.responses()) / 2, at: (t0 + performance.now()) / 2, cpuMs, redis: snap };
}

/**
 * One measurement. Costs and req/s come from a window inside the load (its first
 * and last 10%, 0.2–1 s, left out): under steady closed-loop load the requests in
 * flight at both edges cancel out, so Redis and CPU deltas divided by the responses
 * in the window are per-request costs, with no ramp-up or tail in them.
 */
async function measure(t: RunningTarget, scenario: Scenario, round: number, redis: Redis, seconds: number): Promise<Measurement> {
  const cookie = await freshSession(t, scenario.blobKb);
  await quiesce(redis);
  const edgeMs = Math.min(1000, Math.max(200, seconds * 100));
  const c = startAutocannon(t.port, scenario, cookie, seconds);
  await sleep(edgeMs);
  const e0 = await edge(c, t.pid, redis);
  await sleep(Math.max(0, seconds * 1000 - 2 * edgeMs - (performance.now() - e0.at)));
  const e1 = await edge(c, t.pid, redis);
  const result = await c.done;
  const r0 = e0.redis;
  const r1 = e1.redis;
  const requests = e1.responses - e0.responses;
  const windowSeconds = (e1.at - e0.at) / 1000;
  const per = (x: number) => (requests > 0 ? x / requests : NaN);
  const mix: Record<string, number> = {};
  for (const [name, calls] of r1.cmd) {
    if (name === 'info') continue;
    const d = calls - (r0.cmd.get(name) ?? 0);
    if (d > 0) mix[name] = per(d);
  }
  const infoCalls = (r1.cmd.get('info') ?? 0) - (r0.cmd.get('info') ?? 0);
  return {
    round,
    scenario: scenario.id,
    target: t.def.name,
    seconds: result.duration,
    windowSeconds,
    requests,
    totalResponses: result.requests.total,
    rps: requests / windowSeconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    timeouts: result.timeouts,
    cpuMsPerReq: per(e1.cpuMs - e0.cpuMs),
    redisCmdsPerReq: per(r1.commands - r0.commands - infoCalls),
    redisBytesInPerReq: per(r1.netIn - r0.netIn - (r1.ownInCum - r0.ownInCum)),
    redisBytesOutPerReq: per(r1.netOut - r0.netOut - (r1.ownOutCumBefore - r0.ownOutCumBefore)),
    redisCpuUsPerReq: per((r1.cpuSec - r0.cpuSec) * 1e6),
    redisCmdMix: mix,
  };
}

/**
 * One measurement from its slices: counts and windows add up, per-request costs are weighted by
 * each slice's requests, p50 is the median of the slices' and p99 the largest.
 */
function mergeSlices(parts: Measurement[]): Measurement {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  const requests = parts.reduce((sum, part) => sum + part.requests, 0);
  const windowSeconds = parts.reduce((sum, part) => sum + part.windowSeconds, 0);
  const weighted = (pick: (part: Measurement) => number): number => (requests > 0 ? parts.reduce((sum, part) => sum + pick(part) * part.requests, 0) / requests : NaN);
  const sum = (pick: (part: Measurement) => number): number => parts.reduce((total, part) => total + pick(part), 0);
  const mix: Record<string, number> = {};
  for (const name of new Set(parts.flatMap((part) => Object.keys(part.redisCmdMix)))) mix[name] = weighted((part) => part.redisCmdMix[name] ?? 0);
  return {
    ...first,
    seconds: sum((part) => part.seconds),
    windowSeconds,
    requests,
    totalResponses: sum((part) => part.totalResponses),
    rps: requests / windowSeconds,
    p50: median(parts.map((part) => part.p50)),
    p99: Math.max(...parts.map((part) => part.p99)),
    errors: sum((part) => part.errors),
    non2xx: sum((part) => part.non2xx),
    timeouts: sum((part) => part.timeouts),
    cpuMsPerReq: weighted((part) => part.cpuMsPerReq),
    redisCmdsPerReq: weighted((part) => part.redisCmdsPerReq),
    redisBytesInPerReq: weighted((part) => part.redisBytesInPerReq),
    redisBytesOutPerReq: weighted((part) => part.redisBytesOutPerReq),
    redisCpuUsPerReq: weighted((part) => part.redisCpuUsPerReq),
    redisCmdMix: mix,
  };
}

async function warm(t: RunningTarget): Promise<void> {
  for (const sc of SCENARIOS.filter((s) => s.blobKb === undefined || s.blobKb === 1)) {
    const cookie = await freshSession(t, sc.blobKb);
    await startAutocannon(t.port, sc, cookie, WARMUP_SECONDS).done;
  }
}

// ------------------------------------------------------------- lost update --

interface LostUpdateResult {
  target: string;
  writers: number;
  survivors: number[];
  median: number;
  min: number;
  max: number;
  errors: number;
}

async function lostUpdateTry(t: RunningTarget): Promise<{ survivors: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: LOST_WRITERS });
  try {
    const w = await httpGet(t.port, '/write');
    json(w, '/write');
    const cookie = cookieFrom(w);
    if (!cookie) throw new Error('no cookie');
    // Open the sockets first (no cookie: no session work) so the writes leave together.
    await Promise.all(Array.from({ length: LOST_WRITERS }, () => httpGet(t.port, '/plain', undefined, agent)));
    const res = await Promise.all(
      Array.from({ length: LOST_WRITERS }, (_, i) => httpGet(t.port, `/set?k=k${i}&v=1`, cookie, agent).catch(() => null)),
    );
    const errors = res.filter((r) => !r || r.status !== 200).length;
    const d = json(await httpGet(t.port, '/dump', cookie), '/dump');
    const survivors = Object.keys(d.data ?? {}).filter((k) => /^k\d+$/.test(k)).length;
    return { survivors, errors };
  } finally {
    agent.destroy();
  }
}

// ------------------------------------------------------------------ report --

interface SummaryRow {
  scenario: string;
  target: string;
  rounds: number;
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerReq: number;
  redisCmdsPerReq: number;
  redisBytesInPerReq: number;
  redisBytesOutPerReq: number;
  redisCpuUsPerReq: number;
  vsBare: number;
  vsFastifySession: number;
  errors: number;
  non2xx: number;
  redisCmdMix: Record<string, number>;
}

function summarize(ms: Measurement[], targets: string[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const sc of SCENARIOS) {
    for (const target of targets) {
      const mine = ms.filter((m) => m.scenario === sc.id && m.target === target);
      if (mine.length === 0) continue;
      const ratio = (base: string) =>
        median(
          mine.map((m) => {
            const b = ms.find((x) => x.scenario === sc.id && x.target === base && x.round === m.round);
            return b && b.rps > 0 ? m.rps / b.rps : NaN;
          }),
        );
      const mix: Record<string, number> = {};
      const names = new Set(mine.flatMap((m) => Object.keys(m.redisCmdMix)));
      for (const n of names) mix[n] = median(mine.map((m) => m.redisCmdMix[n] ?? 0));
      rows.push({
        scenario: sc.id,
        target,
        rounds: mine.length,
        rps: median(mine.map((m) => m.rps)),
        p50: median(mine.map((m) => m.p50)),
        p99: median(mine.map((m) => m.p99)),
        cpuMsPerReq: median(mine.map((m) => m.cpuMsPerReq)),
        redisCmdsPerReq: median(mine.map((m) => m.redisCmdsPerReq)),
        redisBytesInPerReq: median(mine.map((m) => m.redisBytesInPerReq)),
        redisBytesOutPerReq: median(mine.map((m) => m.redisBytesOutPerReq)),
        redisCpuUsPerReq: median(mine.map((m) => m.redisCpuUsPerReq)),
        vsBare: ratio(BASELINE),
        vsFastifySession: ratio(PEER_BASELINE),
        errors: mine.reduce((a, m) => a + m.errors + m.timeouts, 0),
        non2xx: mine.reduce((a, m) => a + m.non2xx, 0),
        redisCmdMix: mix,
      });
    }
  }
  return rows;
}

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const fmtInt = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const fmtBytes = (x: number): string => (!Number.isFinite(x) ? '–' : x >= 10_000 ? `${(x / 1024).toFixed(1)} KiB` : fmtInt(x));
const fmtRatio = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');

function mdTable(header: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const a = align ?? header.map((_, i) => (i < 2 ? 'l' : 'r'));
  const lines = [`| ${header.join(' | ')} |`, `|${a.map((x) => (x === 'r' ? '---:' : ':---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function renderMarkdown(ctx: {
  date: string;
  meta: Record<string, unknown>;
  statuses: TargetStatus[];
  summary: SummaryRow[];
  lost: LostUpdateResult[];
}): string {
  const label = (name: string) => ALL_TARGETS.find((t) => t.name === name)?.label ?? name;
  const out: string[] = [];
  const m = ctx.meta;
  out.push(`# keepsake benchmarks — ${ctx.date}${QUICK ? ' (--quick)' : ''}`);
  out.push('');
  out.push(
    `${m.cpus} × ${m.cpuModel}, node ${m.node}, redis ${m.redis}; ${m.rounds} round(s) × ${m.seconds} s per measurement` +
      `${Number(m.slices) > 1 ? ` (${m.slices} slices, taken in turn with the other targets')` : ''}, ` +
      `${m.connections} connections, ${m.warmupSeconds} s warmup per route. Medians over rounds; ratios are req/s ratios ` +
      `taken within each round, then the median. Whole run: ${m.elapsedSeconds} s. See bench/README.md for the columns.`,
  );
  out.push('');
  out.push('Targets:');
  for (const s of ctx.statuses) out.push(`- **${s.label}** (\`${s.name}\`): ${s.status}${s.reason ? ` — ${s.reason}` : ''}`);
  out.push('');
  out.push('## Throughput and cost per request');
  out.push('');
  out.push(
    mdTable(
      ['scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'CPU ms/req', 'Redis cmds/req', 'Redis B in/req', 'Redis B out/req', 'Redis CPU µs/req', 'vs bare', 'vs @fastify/session'],
      ctx.summary.map((r) => [
        r.scenario,
        label(r.target),
        fmtInt(r.rps),
        fmt(r.p50, 0),
        fmt(r.p99, 0),
        fmt(r.cpuMsPerReq, 3),
        fmt(r.redisCmdsPerReq, 2),
        fmtBytes(r.redisBytesInPerReq),
        fmtBytes(r.redisBytesOutPerReq),
        fmt(r.redisCpuUsPerReq, 1),
        fmtRatio(r.vsBare),
        fmtRatio(r.vsFastifySession),
      ]),
    ),
  );
  out.push('');
  const sessionTargets = [...new Set(ctx.summary.map((r) => r.target))].filter((t) => ALL_TARGETS.find((d) => d.name === t)?.session);
  out.push('## Redis bytes sent per small write (/set of one key), by session size');
  out.push('');
  out.push(
    mdTable(
      ['target', ...BLOB_SIZES_KB.map((kb) => `${kb} KB session`)],
      sessionTargets.map((t) => [
        label(t),
        ...BLOB_SIZES_KB.map((kb) => fmtBytes(ctx.summary.find((r) => r.target === t && r.scenario === `set@${kb}KB`)?.redisBytesInPerReq ?? NaN)),
      ]),
      ['l', ...BLOB_SIZES_KB.map((): 'r' => 'r')],
    ),
  );
  out.push('');
  out.push('## Redis commands per request (median)');
  out.push('');
  out.push('From `INFO commandstats`; commands run inside a function or script are counted besides the `fcall`/`evalsha` itself.');
  out.push('');
  const mixScenarios = ['plain', 'read', 'write', 'set@1KB'];
  out.push(
    mdTable(
      ['target', ...mixScenarios],
      sessionTargets.map((t) => [
        label(t),
        ...mixScenarios.map((s) => {
          const mix = ctx.summary.find((r) => r.target === t && r.scenario === s)?.redisCmdMix ?? {};
          const parts = Object.entries(mix)
            .filter(([, v]) => v >= 0.01)
            .sort((a, b) => b[1] - a[1])
            .map(([k, v]) => `${k} ${v.toFixed(2)}`);
          return parts.length ? parts.join(', ') : '—';
        }),
      ]),
      ['l', ...mixScenarios.map((): 'l' => 'l')],
    ),
  );
  out.push('');
  out.push(`## Lost updates: ${LOST_WRITERS} concurrent /set of different keys on one session`);
  out.push('');
  out.push(
    mdTable(
      ['target', 'tries', 'survivors median', 'min', 'max', 'request errors'],
      ctx.lost.map((l) => [label(l.target), String(l.survivors.length), `${fmt(l.median, 1)} / ${l.writers}`, String(l.min), String(l.max), String(l.errors)]),
    ),
  );
  const bad = ctx.summary.filter((r) => r.errors > 0 || r.non2xx > 0);
  if (bad.length) {
    out.push('');
    out.push('## Errors during measurement');
    out.push('');
    for (const r of bad) out.push(`- ${r.scenario} / ${label(r.target)}: ${r.errors} connection errors/timeouts, ${r.non2xx} non-2xx`);
  }
  out.push('');
  return out.join('\n');
}

// -------------------------------------------------------------------- main --

const cleanups: (() => Promise<void>)[] = [];
let cleaningUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* best effort */
      }
    }
  })();
  return cleaningUp;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`\n${sig}: stopping targets and redis`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const wanted = targetsArg ? new Set(targetsArg.split(',').map((s) => s.trim())) : undefined;
  const defs = ALL_TARGETS.filter((t) => (wanted ? wanted.has(t.name) : !t.optIn));
  if (defs.length === 0) throw new Error(`no targets match ${targetsArg}`);

  const redis = await startRedis();
  cleanups.push(async () => {
    redis.client.disconnect();
    await stopProc(redis.proc);
  });
  log(`redis-server ${redis.version} on 127.0.0.1:${redis.port}`);

  const statuses: TargetStatus[] = [];
  const running: RunningTarget[] = [];
  for (const def of defs) {
    try {
      const t = await startTarget(def, redis.port);
      cleanups.push(() => stopProc(t.proc));
      try {
        await checkTarget(t);
      } catch (err) {
        await stopProc(t.proc);
        statuses.push({ name: def.name, label: def.label, status: 'broken', reason: `functional check failed: ${(err as Error).message}` });
        log(`✗ ${def.name}: functional check failed: ${(err as Error).message}`);
        continue;
      }
      running.push(t);
      statuses.push({ name: def.name, label: def.label, status: 'ok' });
      log(`✓ ${def.name} pid ${t.pid} on port ${t.port}`);
    } catch (err) {
      statuses.push({ name: def.name, label: def.label, status: 'missing', reason: `did not start: ${(err as Error).message}` });
      log(`✗ ${def.name}: did not start: ${(err as Error).message}`);
    }
  }
  if (running.length === 0) throw new Error('no target started');

  for (const t of running) {
    log(`warming ${t.def.name}…`);
    await warm(t);
  }

  // Lost-update test.
  const lost: LostUpdateResult[] = [];
  const sessionTargets = running.filter((t) => t.def.session);
  const lostRaw = new Map<string, { survivors: number[]; errors: number }>(sessionTargets.map((t) => [t.def.name, { survivors: [], errors: 0 }]));
  for (let i = 0; i < (scenariosArg ? 0 : LOST_TRIES); i++) {
    for (let j = 0; j < sessionTargets.length; j++) {
      const t = sessionTargets[(i + j) % sessionTargets.length]!;
      const acc = lostRaw.get(t.def.name)!;
      try {
        const r = await lostUpdateTry(t);
        acc.survivors.push(r.survivors);
        acc.errors += r.errors;
      } catch (err) {
        acc.errors += LOST_WRITERS;
        log(`lost-update try on ${t.def.name} failed: ${(err as Error).message}`);
      }
    }
  }
  for (const [target, r] of lostRaw) {
    if (r.survivors.length === 0) continue;
    lost.push({ target, writers: LOST_WRITERS, survivors: r.survivors, median: median(r.survivors), min: Math.min(...r.survivors), max: Math.max(...r.survivors), errors: r.errors });
    log(`lost-update ${target}: survivors ${r.survivors.join(',')} of ${LOST_WRITERS}`);
  }

  // Interleaved rounds.
  const measurements: Measurement[] = [];
  const dead = new Set<string>();
  const total = ROUNDS * SCENARIOS.length * running.length;
  let done = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const order = running.map((_, i) => running[(i + round - 1) % running.length]!);
    for (const sc of SCENARIOS) {
      // Slice after slice, every target in turn (the order rotated each slice too).
      const slices = new Map<RunningTarget, Measurement[]>();
      const failed = new Set<RunningTarget>();
      for (let slice = 0; slice < SLICES; slice++) {
        for (const t of order.map((_, i) => order[(i + slice) % order.length]!)) {
          if (dead.has(t.def.name) || failed.has(t)) continue;
          try {
            slices.set(t, [...(slices.get(t) ?? []), await measure(t, sc, round, redis.client, SECONDS / SLICES)]);
          } catch (err) {
            failed.add(t);
            const exited = t.proc.exitCode !== null || t.proc.signalCode !== null;
            log(`round ${round} ${sc.id} ${t.def.name}: FAILED ${(err as Error).message}${exited ? ' (process exited; dropped)' : ''}`);
            if (exited) {
              dead.add(t.def.name);
              const st = statuses.find((x) => x.name === t.def.name)!;
              st.status = 'broken';
              st.reason = `exited during the run: ${t.output.slice(-3).join(' | ')}`;
            }
          }
        }
      }
      for (const t of order) {
        done++;
        const parts = slices.get(t);
        if (failed.has(t) || parts === undefined) continue;
        const m = mergeSlices(parts);
        measurements.push(m);
        log(
          `[${done}/${total}] round ${round} ${sc.id.padEnd(10)} ${t.def.name.padEnd(16)} ${fmtInt(m.rps).padStart(7)} req/s ` +
            `p50 ${m.p50} p99 ${m.p99} ms, cpu ${fmt(m.cpuMsPerReq, 3)} ms/req, redis ${fmt(m.redisCmdsPerReq, 2)} cmds ${fmtBytes(m.redisBytesInPerReq)} in/req` +
            (m.errors || m.non2xx ? `  !! errors ${m.errors} non2xx ${m.non2xx}` : ''),
        );
      }
    }
  }

  const summary = summarize(
    measurements,
    running.map((t) => t.def.name),
  );
  const now = new Date();
  const date = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
  const meta = {
    date: now.toISOString(),
    quick: QUICK,
    rounds: ROUNDS,
    seconds: SECONDS,
    slices: SLICES,
    warmupSeconds: WARMUP_SECONDS,
    connections: CONNECTIONS,
    lostUpdateTries: LOST_TRIES,
    lostUpdateWriters: LOST_WRITERS,
    node: process.version,
    redis: redis.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    platform: `${os.platform()} ${os.release()}`,
    elapsedSeconds: 0,
  };

  await cleanup();
  meta.elapsedSeconds = Math.round((Date.now() - started) / 1000);

  const md = renderMarkdown({ date, meta, statuses, summary, lost });
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  // BENCH_SUFFIX names a second run of the same day (2026-12-07-b) instead of overwriting the first.
  const suffix = process.env.BENCH_SUFFIX ? `-${process.env.BENCH_SUFFIX}` : '';
  const base = path.join(RESULTS_DIR, `${date}${suffix}${QUICK ? '-quick' : ''}${scenariosArg ? '-partial' : ''}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify({ meta, targets: statuses, scenarios: SCENARIOS, summary, lostUpdate: lost, measurements }, null, 2) + '\n');
  fs.writeFileSync(`${base}.md`, md);
  console.log(md);
  log(`wrote ${path.relative(ROOT, base)}.json and .md in ${meta.elapsedSeconds} s`);
}

main().then(
  () => process.exit(0),
  async (err) => {
    console.error(err);
    await cleanup();
    process.exit(1);
  },
);

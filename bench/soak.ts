// Soak: no acknowledged write is lost while Redis is killed (-9) and restarted under load.
//
//   npx tsc -p tsconfig.json && node dist/bench/soak.js      # ~2 minutes
//   SOAK_SECONDS=60 SOAK_CLIENTS=16 node dist/bench/soak.js
//
// A throwaway redis-server (`--appendonly yes --appendfsync always`: what Redis acknowledged
// survives its restart) and the demo app (`keepsake serve`, its own process) on 127.0.0.1 only.
// Concurrent clients, each with its own session, write numbered values: PUT /api/name
// `n-<client>-<seq>` and POST /api/basket/items (qty 1, rotating over SKUS skus), and now and then
// read their session back. Redis is killed with SIGKILL and restarted on the same port and dir
// twice during the run. Afterwards every session is read straight from Redis and checked exactly:
//
// - name: the stored seq must be >= the last acknowledged (2xx) seq, and one that was sent.
//   Acknowledged name writes with a higher seq than the stored one are lost.
// - basket: per sku, acknowledged adds <= stored qty <= adds sent (a 503 is an unknown outcome:
//   it may or may not have been applied). Stored below acknowledged = lost; above sent = duplicated.
// - a session the client holds a cookie for must still exist (a new cookie means it was lost).
//
// Prints acknowledged / 503s / lost and writes bench/results/soak-<date>.md.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValueCodec } from '../src/session/value-codec.js';
import { RedisServer, sleep } from '../test/support/redis-server.js';

const envNum = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};
const SECONDS = envNum('SOAK_SECONDS', 120);
const CLIENTS = Math.round(envNum('SOAK_CLIENTS', 24));
const DOWN_MS = envNum('SOAK_DOWN_MS', 3000);
const SKUS = 20;
const READ_EVERY = 10;
const REQUEST_TIMEOUT_MS = 15_000;
const ACQUIRE_MS = 500;
const COMMAND_MS = 1000;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const codec = new ValueCodec();

/** What one session was sent and what was acknowledged for it. */
interface SessionRecord {
  id: string;
  client: number;
  lastAckedName: number;
  lastSentName: number;
  ackedNames: number[];
  ackedAdds: number[];
  sentAdds: number[];
}

interface Counts {
  requests: number;
  acknowledged: number;
  unavailable: number;
  otherStatus: Map<number, number>;
  errors: number;
  reads: number;
  staleReads: number;
  sessionsReplaced: number;
  max503Ms: number;
  maxOkMs: number;
}

const counts: Counts = {
  requests: 0,
  acknowledged: 0,
  unavailable: 0,
  otherStatus: new Map(),
  errors: 0,
  reads: 0,
  staleReads: 0,
  sessionsReplaced: 0,
  max503Ms: 0,
  maxOkMs: 0,
};
const records: SessionRecord[] = [];
const firstOkAfter: number[] = [];
let lastRestartAt: number | null = null;

function newRecord(id: string, client: number): SessionRecord {
  const record = { id, client, lastAckedName: -1, lastSentName: -1, ackedNames: [], ackedAdds: new Array(SKUS).fill(0), sentAdds: new Array(SKUS).fill(0) };
  records.push(record);
  return record;
}

class SoakClient {
  #cookie: string | undefined;
  #record: SessionRecord | undefined;
  #seq = 0;
  #ops = 0;

  constructor(readonly index: number, readonly baseUrl: string) {}

  async run(until: number): Promise<void> {
    while (Date.now() < until) {
      const op = this.#ops++;
      if (this.#record !== undefined && op % READ_EVERY === READ_EVERY - 1) await this.#read();
      else if (op % 2 === 0) await this.#putName();
      else await this.#addItem();
    }
  }

  async #putName(): Promise<void> {
    const seq = this.#seq++;
    const sentTo = this.#record;
    if (sentTo) sentTo.lastSentName = seq;
    const reply = await this.#request('PUT', '/api/name', { name: `n-${this.index}-${seq}` });
    if (reply?.ok) {
      const record = this.#record!;
      if (record !== sentTo) record.lastSentName = seq;
      record.lastAckedName = seq;
      record.ackedNames.push(seq);
    }
  }

  async #addItem(): Promise<void> {
    const sku = this.#seq++ % SKUS;
    const sentTo = this.#record;
    if (sentTo) sentTo.sentAdds[sku]!++;
    const reply = await this.#request('POST', '/api/basket/items', { sku: `k${sku}`, qty: 1 });
    if (reply?.ok) {
      const record = this.#record!;
      if (record !== sentTo) record.sentAdds[sku]!++;
      record.ackedAdds[sku]!++;
    }
  }

  /** Read-your-writes: a 200 must show at least everything acknowledged so far. */
  async #read(): Promise<void> {
    const record = this.#record!;
    const reply = await this.#request('GET', '/api/session', undefined);
    if (!reply?.ok || this.#record !== record) return;
    counts.reads++;
    const view = reply.body as { name: string | null; basket: { sku: string; qty: number }[] };
    const nameSeq = view.name === null ? -1 : Number(view.name.split('-')[2]);
    const stale = nameSeq < record.lastAckedName || record.ackedAdds.some((acked, sku) => (view.basket.find((item) => item.sku === `k${sku}`)?.qty ?? 0) < acked);
    if (stale) counts.staleReads++;
  }

  async #request(method: string, url: string, body: unknown): Promise<{ ok: boolean; body: unknown } | null> {
    counts.requests++;
    const began = performance.now();
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.baseUrl + url, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(this.#cookie ? { cookie: this.#cookie } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await response.text();
    } catch {
      counts.errors++;
      return null;
    }
    const ms = performance.now() - began;
    const ok = response.status >= 200 && response.status < 300;
    if (ok) {
      if (method !== 'GET') counts.acknowledged++;
      counts.maxOkMs = Math.max(counts.maxOkMs, ms);
      if (lastRestartAt !== null && firstOkAfter.length < restartsDone) firstOkAfter.push(Date.now() - lastRestartAt);
      this.#adopt(response.headers.getSetCookie());
    } else if (response.status === 503) {
      counts.unavailable++;
      counts.max503Ms = Math.max(counts.max503Ms, ms);
    } else {
      counts.otherStatus.set(response.status, (counts.otherStatus.get(response.status) ?? 0) + 1);
    }
    return { ok, body: ok && text !== '' ? JSON.parse(text) : undefined };
  }

  /** Follows the session cookie; a different id while holding one means the old session was lost. */
  #adopt(setCookies: string[]): void {
    const header = setCookies.find((cookie) => cookie.startsWith('dmsession='));
    if (header === undefined) return;
    const value = header.slice('dmsession='.length).split(';')[0]!;
    const id = decodeURIComponent(value).split('.')[0]!;
    if (this.#record?.id === id) return;
    if (this.#record !== undefined) counts.sessionsReplaced++;
    this.#cookie = `dmsession=${value}`;
    this.#record = newRecord(id, this.index);
  }
}

let restartsDone = 0;

async function startApp(redisPort: number, prefix: string): Promise<{ child: ChildProcess; url: string; log: () => string; exited: Promise<number | null> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keepsake-soak-'));
  const ini = path.join(dir, 'soak.ini');
  fs.writeFileSync(
    ini,
    [
      '[server]',
      'host = 127.0.0.1',
      '[session]',
      `key_prefix = ${prefix}`,
      'persist = before_response',
      '[redis_connection_pool.default]',
      'host = 127.0.0.1',
      `port = ${redisPort}`,
      'max = 16',
      `acquire_timeout_ms = ${ACQUIRE_MS}`,
      `command_timeout_ms = ${COMMAND_MS}`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/keepsake.js'), 'serve', '--config', ini, '--port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  let log = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    log = (log + chunk).slice(-20_000);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start:\n${log}`)), 15_000);
    child.stderr!.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`app exited (${code}) before listening:\n${log}`)));
  });
  return { child, url, log: () => log, exited };
}

interface Verdict {
  lostNames: number;
  lostAdds: number;
  duplicatedAdds: number;
  oddNames: number;
  missingSessions: number;
  checkedAcks: number;
}

async function verify(server: RedisServer, prefix: string): Promise<Verdict> {
  const redis = server.client({ maxRetriesPerRequest: 1 });
  const verdict: Verdict = { lostNames: 0, lostAdds: 0, duplicatedAdds: 0, oddNames: 0, missingSessions: 0, checkedAcks: 0 };
  for (const record of records) {
    const acked = record.ackedNames.length + record.ackedAdds.reduce((a, b) => a + b, 0);
    verdict.checkedAcks += acked;
    const hash = await redis.hgetallBuffer(prefix + record.id);
    if (hash['m:c'] === undefined) {
      verdict.missingSessions++;
      verdict.lostNames += record.ackedNames.length;
      verdict.lostAdds += acked - record.ackedNames.length;
      continue;
    }
    const name = hash['d:name'] === undefined ? null : (codec.decode(hash['d:name']) as string);
    const storedSeq = name === null ? -1 : Number(name.split('-')[2]);
    if (name !== null && (!name.startsWith(`n-${record.client}-`) || storedSeq > record.lastSentName)) verdict.oddNames++;
    verdict.lostNames += record.ackedNames.filter((seq) => seq > storedSeq).length;
    const basket = hash['d:basket'] === undefined ? [] : (codec.decode(hash['d:basket']) as { sku: string; qty: number }[]);
    for (let sku = 0; sku < SKUS; sku++) {
      const stored = basket.find((item) => item.sku === `k${sku}`)?.qty ?? 0;
      verdict.lostAdds += Math.max(0, record.ackedAdds[sku]! - stored);
      verdict.duplicatedAdds += Math.max(0, stored - record.sentAdds[sku]!);
    }
  }
  return verdict;
}

async function main(): Promise<void> {
  const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const prefix = `soak:${randomBytes(4).toString('hex')}:`;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const stopAll = async () => {
    if (app && app.child.exitCode === null) app.child.kill('SIGKILL');
    await server.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    app = await startApp(server.port, prefix);
    console.log(`soak: ${SECONDS} s, ${CLIENTS} clients, app ${app.url}, redis 127.0.0.1:${server.port} (appendonly yes, appendfsync always), Redis killed twice for ~${DOWN_MS} ms`);
    const began = Date.now();
    const until = began + SECONDS * 1000;
    const clients = Array.from({ length: CLIENTS }, (_, i) => new SoakClient(i, app!.url));
    const load = Promise.all(clients.map((client) => client.run(until)));

    const restarts: { at: number; downMs: number }[] = [];
    const chaos = (async () => {
      for (const fraction of [1 / 3, 2 / 3]) {
        await sleep(Math.max(0, began + SECONDS * 1000 * fraction - Date.now()));
        const at = Date.now();
        await server.kill('SIGKILL');
        console.log(`  ${((at - began) / 1000).toFixed(1)} s: redis killed (SIGKILL)`);
        await sleep(DOWN_MS);
        await server.restart();
        lastRestartAt = Date.now();
        restartsDone++;
        restarts.push({ at: (at - began) / 1000, downMs: lastRestartAt - at });
        console.log(`  ${((lastRestartAt - began) / 1000).toFixed(1)} s: redis restarted on port ${server.port} (AOF replayed)`);
      }
    })();
    const progress = setInterval(() => {
      console.log(`  ${Math.round((Date.now() - began) / 1000)} s: ${counts.requests} requests, ${counts.acknowledged} acknowledged writes, ${counts.unavailable} 503s, ${counts.errors} errors`);
    }, 10_000);
    await Promise.all([load, chaos]);
    clearInterval(progress);
    const elapsed = (Date.now() - began) / 1000;

    // Stop the app the way an operator does; it must exit 0 within 5 s.
    const stopAt = Date.now();
    app.child.kill('SIGTERM');
    const exitCode = await Promise.race([app.exited, sleep(10_000).then(() => 'timeout' as const)]);
    const stopMs = Date.now() - stopAt;

    const verdict = await verify(server, prefix);
    const lost = verdict.lostNames + verdict.lostAdds;
    const others = [...counts.otherStatus].map(([status, n]) => `${status}: ${n}`).join(', ') || 'none';
    const lines = [
      `# Soak: acknowledged writes across Redis restarts — ${new Date().toISOString().slice(0, 10)}`,
      '',
      `${elapsed.toFixed(0)} s, ${CLIENTS} concurrent clients (one session each) against \`keepsake serve\` (persist = before_response, pool max 16, acquire_timeout_ms ${ACQUIRE_MS}, command_timeout_ms ${COMMAND_MS}),`,
      `a throwaway redis-server with \`--appendonly yes --appendfsync always\`, killed with SIGKILL and restarted on the same port and dir twice.`,
      `Node ${process.version}, ${os.cpus().length} CPUs. Run by \`node dist/bench/soak.js\` (bench/soak.ts).`,
      '',
      '| | count |',
      '| --- | ---: |',
      `| requests | ${counts.requests} |`,
      `| **acknowledged writes** (2xx PUT /api/name, POST /api/basket/items) | **${counts.acknowledged}** |`,
      `| 503 ERR_SESSION_STORE_UNAVAILABLE | ${counts.unavailable} |`,
      `| other statuses | ${others} |`,
      `| connection errors / client timeouts (${REQUEST_TIMEOUT_MS / 1000} s) | ${counts.errors} |`,
      `| **acknowledged writes lost** | **${lost}** (names ${verdict.lostNames}, basket adds ${verdict.lostAdds}) |`,
      `| sessions missing from Redis / replaced by a new cookie | ${verdict.missingSessions} / ${counts.sessionsReplaced} |`,
      `| basket adds applied more often than sent | ${verdict.duplicatedAdds} |`,
      `| names not among those sent | ${verdict.oddNames} |`,
      `| reads checked (read-your-writes) / stale | ${counts.reads} / ${counts.staleReads} |`,
      `| slowest 503 / slowest 2xx | ${Math.round(counts.max503Ms)} ms / ${Math.round(counts.maxOkMs)} ms |`,
      `| Redis restarts (at s, down ms) | ${restarts.map((r) => `${r.at.toFixed(1)} s, ${r.downMs} ms`).join('; ')} |`,
      `| first 2xx after each restart | ${firstOkAfter.map((ms) => `${ms} ms`).join(', ') || 'n/a'} |`,
      `| app exit after SIGTERM | code ${exitCode}, ${stopMs} ms |`,
      '',
      `Check: ${records.length} sessions read straight from Redis; every acknowledged write (${verdict.checkedAcks}) compared exactly`,
      '(name: stored seq >= last acknowledged; basket: acknowledged <= stored qty <= sent, per sku).',
      '',
    ];
    const report = lines.join('\n');
    console.log(`\nacknowledged ${counts.acknowledged}, 503s ${counts.unavailable}, lost ${lost}\n`);
    console.log(report);
    const results = path.join(ROOT, 'bench', 'results');
    fs.mkdirSync(results, { recursive: true });
    const file = path.join(results, `soak-${new Date().toISOString().slice(0, 10)}.md`);
    fs.writeFileSync(file, report);
    console.log(`written to ${path.relative(ROOT, file)}`);
    process.exitCode = lost === 0 && verdict.duplicatedAdds === 0 && counts.staleReads === 0 && exitCode === 0 ? 0 : 1;
  } finally {
    await stopAll();
  }
}

await main();

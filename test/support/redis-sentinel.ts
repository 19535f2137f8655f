// Throwaway Sentinel setup: one master, one replica, three sentinels (quorum 2).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import {
  HOST,
  RedisProcess,
  RedisServer,
  closeClient,
  freePort,
  makeTempDir,
  parseInfo,
  removeTempDir,
  sleep,
  type RespReply,
} from './redis-server.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Flat [k1, v1, k2, v2, ...] reply -> Map. */
function pairs(reply: RespReply): Map<string, string> {
  const out = new Map<string, string>();
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), String(reply[i + 1]));
  return out;
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<string | true>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await check();
      if (r === true) return;
      last = r;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms (last: ${last})`);
}

interface Sentinel {
  proc: RedisProcess;
  dir: string;
}

async function startSentinel(masterName: string, masterPort: number): Promise<Sentinel> {
  // Own dir and config per sentinel: sentinels rewrite their config file.
  const dir = makeTempDir('keepsake-sentinel-');
  const conf = path.join(dir, 'sentinel.conf');
  let lastErr: unknown;
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    writeFileSync(
      conf,
      [
        `port ${port}`,
        `bind ${HOST}`,
        `dir ${dir}`,
        `sentinel monitor ${masterName} ${HOST} ${masterPort} 2`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 3000`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n'),
    );
    try {
      return { proc: await RedisProcess.spawn([conf, '--sentinel'], port), dir };
    } catch (err) {
      lastErr = err;
      if (!RedisProcess.isPortClash(err)) break;
    }
  }
  await removeTempDir(dir);
  throw lastErr;
}

export class RedisSentinelGroup {
  readonly masterName = 'mymaster' as const;
  readonly sentinels: HostPort[];
  private readonly clients = new Set<Redis>();
  private knownMaster: HostPort;
  private stopping: Promise<void> | null = null;

  private constructor(
    public master: RedisServer,
    public replica: RedisServer,
    private readonly sentinelProcs: Sentinel[],
  ) {
    this.sentinels = sentinelProcs.map((s) => ({ host: HOST, port: s.proc.port }));
    this.knownMaster = { host: master.host, port: master.port };
  }

  static async start(): Promise<RedisSentinelGroup> {
    // Default diskless-sync delay would hold the replica's first full sync for 5 s.
    const master = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0'] });
    let replica: RedisServer | undefined;
    const sentinels: Sentinel[] = [];
    try {
      replica = await RedisServer.start({ args: ['--replicaof', HOST, String(master.port)] });
      const r = replica;
      await waitUntil('replica in sync', 10_000, async () => {
        const info = parseInfo(String(await r.process.command(['INFO', 'replication'])));
        return info.get('master_link_status') === 'up' || `master_link_status:${info.get('master_link_status')}`;
      });
      // Sentinels learn about replicas from the master's INFO; make sure it lists this one as online.
      await waitUntil('master sees replica', 5_000, async () => {
        const info = parseInfo(String(await master.process.command(['INFO', 'replication'])));
        return info.get('slave0')?.includes('state=online') || `slave0:${info.get('slave0')}`;
      });

      const started = await Promise.allSettled([0, 1, 2].map(() => startSentinel('mymaster', master.port)));
      for (const s of started) if (s.status === 'fulfilled') sentinels.push(s.value);
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;

      const group = new RedisSentinelGroup(master, replica, sentinels);
      await group.waitForTopology(20_000);
      return group;
    } catch (err) {
      await Promise.all(sentinels.map((s) => s.proc.kill().then(() => removeTempDir(s.dir))));
      await Promise.all([master.stop(), replica?.stop()]);
      throw err;
    }
  }

  /** Every sentinel sees the master as healthy, the replica, and the 2 other sentinels. */
  private async waitForTopology(timeoutMs: number): Promise<void> {
    await Promise.all(
      this.sentinelProcs.map((s) =>
        waitUntil(`sentinel ${s.proc.port} topology`, timeoutMs, async () => {
          const m = pairs(await s.proc.command(['SENTINEL', 'master', this.masterName]));
          const got = `flags=${m.get('flags')} num-slaves=${m.get('num-slaves')} num-other-sentinels=${m.get('num-other-sentinels')}`;
          if (m.get('flags') !== 'master' || m.get('num-slaves') !== '1' || m.get('num-other-sentinels') !== '2') {
            return got;
          }
          const replicas = await s.proc.command(['SENTINEL', 'replicas', this.masterName]);
          const r = pairs(Array.isArray(replicas) ? (replicas[0] ?? null) : null);
          return (r.get('flags') === 'slave' && r.get('master-link-status') === 'ok') || `${got} replica flags=${r.get('flags')}`;
        }),
      ),
    );
  }

  /** 'h:p,h:p,h:p' */
  sentinelSpec(): string {
    return this.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
  }

  /** A Sentinel-mode ioredis client for mymaster, quit by stop(). Options are passed through. */
  client(options: RedisOptions = {}): Redis {
    const c = new Redis({ ...options, sentinels: this.sentinels.map((s) => ({ ...s })), name: this.masterName });
    c.on('error', () => {});
    this.clients.add(c);
    return c;
  }

  /** SIGKILL whichever server is currently the master (initially `master`). */
  async killMaster(): Promise<void> {
    const current = [this.master, this.replica].find((s) => s.port === this.knownMaster.port);
    await (current ?? this.master).kill('SIGKILL');
  }

  /**
   * Poll SENTINEL get-master-addr-by-name until every live sentinel reports the same address,
   * different from the previous master, and that server says role:master. Returns it.
   */
  async waitForFailover(timeoutMs = 20_000): Promise<HostPort> {
    let result: HostPort | undefined;
    await waitUntil('failover', timeoutMs, async () => {
      const addrs = await Promise.all(
        this.sentinelProcs
          .filter((s) => s.proc.alive)
          .map(async (s) => {
            const r = await s.proc.command(['SENTINEL', 'get-master-addr-by-name', this.masterName]);
            return Array.isArray(r) ? `${r[0]}:${r[1]}` : String(r);
          }),
      );
      const [first] = addrs;
      const previous = `${this.knownMaster.host}:${this.knownMaster.port}`;
      if (!first || first === previous || addrs.some((a) => a !== first)) return `sentinels report ${addrs.join(', ')}`;
      const i = first.lastIndexOf(':');
      const candidate = { host: first.slice(0, i), port: Number(first.slice(i + 1)) };
      const server = [this.master, this.replica].find((s) => s.port === candidate.port);
      const info = parseInfo(String(await (server?.process.command(['INFO', 'replication']) ?? '')));
      if (info.get('role') !== 'master') return `${first} has role ${info.get('role')}`;
      result = candidate;
      return true;
    });
    this.knownMaster = result!;
    return result!;
  }

  /** Quit tracked clients, stop sentinels, master and replica, remove dirs. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.clients].map((c) => closeClient(c)));
      this.clients.clear();
      await Promise.all(this.sentinelProcs.map((s) => s.proc.terminate().then(() => removeTempDir(s.dir))));
      await Promise.all([this.master.stop(), this.replica.stop()]);
    })();
    return this.stopping;
  }
}

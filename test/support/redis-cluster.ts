// Throwaway Redis Cluster (masters, and optionally replicas of each) built from RedisServer processes.
import { spawn } from 'node:child_process';
import { Cluster, type ClusterOptions } from 'ioredis';
import { RedisProcess, RedisServer, closeClient, freePort, parseInfo, sleep } from './redis-server.js';

export interface RedisClusterOptions {
  /** Number of masters; redis-cli refuses fewer than 3. */
  masters?: number;
  /** Replicas per master. @default 0 */
  replicas?: number;
}

/** Start one cluster-enabled node. The bus port is set explicitly because port+10000 may not be free (or valid). */
async function startNode(): Promise<RedisServer> {
  let lastErr: unknown;
  for (let i = 0; i < 5; i++) {
    const [port, bus] = [await freePort(), await freePort()];
    if (port === bus) continue;
    try {
      return await RedisServer.start({
        port,
        args: [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', '2000',
          '--cluster-port', String(bus),
        ],
      });
    } catch (err) {
      lastErr = err;
      if (!RedisProcess.isPortClash(err)) break;
    }
  }
  throw lastErr;
}

function runRedisCli(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`redis-cli ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${out.slice(-8192)}`));
    });
  });
}

export class RedisClusterServers {
  readonly nodes: { host: string; port: number }[];
  private readonly clients = new Set<Cluster>();
  private stopping: Promise<void> | null = null;

  private constructor(readonly servers: RedisServer[]) {
    this.nodes = servers.map((s) => ({ host: s.host, port: s.port }));
  }

  static async start(opts: RedisClusterOptions = {}): Promise<RedisClusterServers> {
    const masters = opts.masters ?? 3;
    const replicas = opts.replicas ?? 0;
    const started = await Promise.allSettled(Array.from({ length: masters * (1 + replicas) }, () => startNode()));
    const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const cluster = new RedisClusterServers(servers);
    try {
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      await runRedisCli(
        ['--cluster', 'create', ...cluster.nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
        20_000,
      );
      await cluster.waitForState('ok', 10_000);
      if (replicas > 0) await cluster.waitForReplicasInSync(masters * replicas, 20_000);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** 'h:p,h:p,h:p' */
  clusterSpec(): string {
    return this.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  }

  /** A new ioredis Cluster client over all nodes, quit by stop(). Options are passed through. */
  client(options: ClusterOptions = {}): Cluster {
    const c = new Cluster(this.nodes.map((n) => ({ ...n })), options);
    // Without a listener ioredis prints every node failure; commands still reject.
    c.on('error', () => {});
    this.clients.add(c);
    return c;
  }

  /** SIGKILL node i and wait for it to exit. The cluster goes to 'fail' after ~2 s (node timeout). */
  killNode(i: number): Promise<void> {
    const server = this.servers[i];
    if (!server) throw new RangeError(`no cluster node ${i}`);
    return server.kill('SIGKILL');
  }

  /** Wait until every live node's CLUSTER INFO reports cluster_state:<state>. */
  async waitForState(state: 'ok' | 'fail', timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const states = await Promise.all(
        this.servers
          .filter((s) => s.alive)
          .map((s) =>
            s.process
              .command(['CLUSTER', 'INFO'])
              .then((r) => parseInfo(String(r)).get('cluster_state') ?? '?')
              .catch((err: Error) => `error: ${err.message}`),
          ),
      );
      last = states.join(', ');
      if (states.every((s) => s === state)) return;
      await sleep(100);
    }
    throw new Error(`cluster_state did not become ${state} within ${timeoutMs} ms (last: ${last})`);
  }

  /** The role of each live node from INFO replication: port -> 'master' | 'slave'. */
  async roles(): Promise<Map<number, string>> {
    const roles = new Map<number, string>();
    for (const server of this.servers.filter((s) => s.alive)) {
      const info = parseInfo(String(await server.process.command(['INFO', 'replication'])));
      roles.set(server.port, info.get('role') ?? '?');
    }
    return roles;
  }

  /** Wait until `count` live replicas have their link to their master up (their initial sync is done). */
  async waitForReplicasInSync(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const links = await Promise.all(
        this.servers
          .filter((s) => s.alive)
          .map(async (s) => {
            const info = parseInfo(String(await s.process.command(['INFO', 'replication']).catch(() => '')));
            return info.get('role') === 'slave' ? `${s.port}:${info.get('master_link_status')}` : null;
          }),
      );
      const replicaLinks = links.filter((link): link is string => link !== null);
      last = replicaLinks.join(', ');
      if (replicaLinks.length === count && replicaLinks.every((link) => link.endsWith(':up'))) return;
      await sleep(100);
    }
    throw new Error(`replicas not in sync within ${timeoutMs} ms (last: ${last})`);
  }

  /** Quit tracked clients and stop every node. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.clients].map((c) => closeClient(c)));
      this.clients.clear();
      await Promise.all(this.servers.map((s) => s.stop()));
    })();
    return this.stopping;
  }
}

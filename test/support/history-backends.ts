/**
 * @module The Redis setups the history checker runs against, each with the faults it can inject:
 * a standalone Redis behind a FaultProxy (lost replies, cut connections, delays, CLIENT KILL,
 * SIGKILL + restart with `appendfsync always`, SIGSTOP/SIGCONT), and a Sentinel group (a
 * `SENTINEL FAILOVER` swapping master and replica, CLIENT KILL) whose writes wait for the replica
 * (`wait_replicas = 1`), so a write acknowledged before a failover is on the new master.
 */
import { FUNCTION } from '../../src/redis/redis-functions.js';
import { FaultProxy } from './fault-proxy.js';
import { RedisServer, parseInfo, redisCommand, sleep } from './redis-server.js';
import { RedisSentinelGroup } from './redis-sentinel.js';

export type FaultKind = 'reply-lost' | 'client-kill' | 'redis-restart' | 'sigstop' | 'cut-all' | 'delay' | 'sentinel-failover';

export const STANDALONE_FAULTS: readonly FaultKind[] = ['reply-lost', 'client-kill', 'redis-restart', 'sigstop', 'cut-all', 'delay'];
export const SENTINEL_FAULTS: readonly FaultKind[] = ['sentinel-failover', 'client-kill'];

export type Topology = 'standalone' | 'sentinel';

export interface Backend {
  /** The `[redis_connection_pool.default]` keys that point the app at this setup. */
  readonly pool: Record<string, string>;
  readonly kinds: readonly FaultKind[];
  /** Injects one fault; `note` counts it (a fault that could not happen is not counted). */
  inject(kind: FaultKind, random: () => number, note: (what: string) => void): Promise<void>;
  /** Ends any fault in progress: nothing stopped, delayed or armed. */
  calm(): void;
  /** Figures of its own, e.g. connections the proxy cut. */
  figures(): Record<string, number>;
  stop(): Promise<void>;
}

/** A write of the keepsake library (not the read-only load), whose reply the proxy may lose. */
export function isWriteCall(args: readonly string[]): boolean {
  return (args[0] ?? '').toUpperCase() === 'FCALL' && args[1] !== FUNCTION.load;
}

const between = (random: () => number, [low, high]: readonly [number, number]): number => low + Math.floor(random() * (high - low));

export async function startBackend(topology: Topology): Promise<Backend> {
  return topology === 'sentinel' ? sentinelBackend() : standaloneBackend();
}

async function standaloneBackend(): Promise<Backend> {
  const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const proxy = await FaultProxy.start(server.port).catch(async (error: unknown) => {
    await server.stop();
    throw error;
  });
  const resume = (): void => {
    if (server.process.alive && server.process.pid) process.kill(server.process.pid, 'SIGCONT');
  };
  return {
    pool: { port: String(proxy.port) },
    kinds: STANDALONE_FAULTS,
    async inject(kind, random, note) {
      switch (kind) {
        case 'reply-lost': {
          const lost = await Promise.race([proxy.loseNextReply(isWriteCall), sleep(2000).then(() => null)]);
          proxy.cancelArmed();
          if (lost) note(`reply-lost (${lost[1]})`);
          break;
        }
        case 'client-kill':
          await redisCommand(server.port, ['CLIENT', 'KILL', 'TYPE', random() < 0.7 ? 'normal' : 'pubsub']);
          note(kind);
          break;
        case 'redis-restart':
          await server.kill('SIGKILL');
          note(kind);
          await sleep(between(random, [200, 1500]));
          await server.restart();
          break;
        case 'sigstop': {
          process.kill(server.process.pid!, 'SIGSTOP');
          note(kind);
          try {
            await sleep(between(random, [300, 2000]));
          } finally {
            resume();
          }
          break;
        }
        case 'cut-all':
          proxy.cutAll();
          note(kind);
          break;
        case 'delay':
          proxy.setDelay(between(random, [50, 1500]));
          note(kind);
          await sleep(between(random, [300, 2000]));
          proxy.setDelay(0);
          break;
        default:
          throw new Error(`fault ${kind} needs another topology`);
      }
    },
    calm() {
      proxy.cancelArmed();
      proxy.setDelay(0);
      resume();
    },
    figures: () => ({ 'proxy connections cut': proxy.counts.connectionsCut }),
    async stop() {
      await proxy.close();
      await server.stop();
    },
  };
}

async function sentinelBackend(): Promise<Backend> {
  const group = await RedisSentinelGroup.start();
  const servers = [group.master, group.replica];
  const role = async (server: RedisServer) => parseInfo(String(await server.process.command(['INFO', 'replication'])));
  return {
    // wait_timeout_ms below command_timeout_ms (the config requires it).
    pool: { sentinels: group.sentinelSpec(), sentinel_name: group.masterName, wait_replicas: '1', wait_timeout_ms: '500' },
    kinds: SENTINEL_FAULTS,
    async inject(kind, _random, note) {
      switch (kind) {
        case 'sentinel-failover': {
          await redisCommand(group.sentinels[0]!.port, ['SENTINEL', 'FAILOVER', group.masterName]);
          note(kind);
          await group.waitForFailover(20_000);
          // The old master follows the new one before the next failover can pick it.
          const deadline = Date.now() + 20_000;
          for (;;) {
            const infos = await Promise.all(servers.map(role));
            if (infos.some((info) => info.get('role') === 'slave' && info.get('master_link_status') === 'up')) break;
            if (Date.now() > deadline) throw new Error('the old master never became a replica in sync');
            await sleep(200);
          }
          break;
        }
        case 'client-kill':
          await Promise.all(servers.map((server) => server.process.command(['CLIENT', 'KILL', 'TYPE', 'normal'])));
          note(kind);
          break;
        default:
          throw new Error(`fault ${kind} needs another topology`);
      }
    },
    calm() {},
    figures: () => ({}),
    stop: () => group.stop(),
  };
}

/**
 * @module One named pool of Redis connections: generic-pool over ioredis.
 *
 * generic-pool does what it is good at: creating connections lazily up to `max`, validating them
 * on borrow, evicting dead ones, draining on close. A connection is held only while commands are
 * being *issued* (synchronously), never while replies are awaited, so concurrent requests share
 * socket writes (shared-writes.ts on a standalone or Sentinel connection, ioredis auto-pipelining
 * on a Cluster; DESIGN.md, "Measured") and a slow controller can never starve the pool.
 */
import { redactCommand } from '../logging/redact-command.js';
import { isIP } from 'node:net';
import { debuglog } from 'node:util';
import { createPool, type Pool } from 'generic-pool';
import type { Redis } from 'ioredis';
import type { PoolConfig } from '../config/schema.js';
import { SessionStoreUnavailableError } from '../errors.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import { OutageLog } from '../logging/outage-log.js';
import { createRedisClient, type RedisClient } from './redis-client-factory.js';
import { LIBRARY_SOURCE } from './redis-functions.js';
import { replicasConfirming } from './replica-wait.js';
import { SentinelWatch } from './sentinel-watch.js';
import { shareWrites } from './shared-writes.js';

const trace = debuglog('keepsake');

/** Failures that came before any command was written (no connection in time). */
const unsent = new WeakSet<object>();

function neverSent<E extends Error>(error: E): E {
  unsent.add(error);
  return error;
}

/** @internal True when `error` (from run()) came before its commands reached any connection: Redis ran none of them. */
export function wasNeverSent(error: unknown): boolean {
  return typeof error === 'object' && error !== null && unsent.has(error);
}

/**
 * How long after a sentinel announced a new master the others may still name the old one (they
 * hear of it through their hello messages, every 2 s by default): a new connection must reach the
 * announced master in that time.
 */
const SWITCH_SETTLE_MS = 10_000;

/** Pause after a failed connect so a down Redis is not hammered by back-to-back attempts. */
const CREATE_FAILURE_PAUSE_MS = 100;

/**
 * A connection unused for this long is PINGed when borrowed: a network cut (a firewall or NAT
 * dropping an idle connection) leaves an idle socket looking `ready`. Busy connections are never
 * PINGed, so a borrow costs no round trip under load.
 */
export const IDLE_PING_AFTER_MS = 5000;

/** Longest wait for that PING (at most half of acquire_timeout_ms, leaving time to connect anew). */
const IDLE_PING_TIMEOUT_MS = 250;

/**
 * The connection last given back is lent again without a trip through generic-pool (a promise, a
 * timer and a validation per borrow) for this long; then the next borrow goes through the pool,
 * which validates it (or picks another) and keeps its idle bookkeeping current.
 */
const HOT_REUSE_MS = 1000;

/**
 * One named pool of Redis connections (a `[redis_connection_pool.NAME]` section), from
 * `redisPools.get(name)`. Opens no connection until first used.
 */
export class RedisPool {
  readonly name: string;
  readonly config: PoolConfig;
  readonly #pool: Pool<RedisClient>;
  /** Every connection the pool holds, and when each was last given back. */
  readonly #lastUsed = new Map<RedisClient, number>();
  /** Connections not to lend again: a command timed out on them, or an idle PING failed. */
  readonly #suspect = new WeakSet<RedisClient>();
  /** The connection last given back by a pool borrow, and when (see HOT_REUSE_MS). */
  #hot: RedisClient | null = null;
  #hotSince = 0;
  #closing = false;
  /** Why the last connect failed (cleared by a success): the detail behind an acquire timeout, for the log. */
  #lastConnectError: unknown = null;
  /** A Cluster batches per node with ioredis auto-pipelining; other connections share writes by cork. */
  readonly #cluster: boolean;

  readonly #outage: OutageLog;
  readonly #logger: KeepsakeLogger;
  /** Connections outside the pool (the notice subscriber): they follow a new master too. */
  readonly #dedicated = new Set<RedisClient>();
  /** On Sentinel: replaces every connection when the sentinels announce a new master. */
  readonly #sentinelWatch: SentinelWatch | null;
  /** Master switches heard so far: a connection made across one may have reached the old master. */
  #switches = 0;
  /** The master the sentinels last announced (`host:port`), null before any switch, and when. */
  #master: string | null = null;
  #masterSince = 0;

  constructor(name: string, config: PoolConfig, logger: KeepsakeLogger = consoleLogger) {
    this.name = name;
    this.config = config;
    this.#outage = new OutageLog(logger, { pool: name }, { lost: `Redis connection lost (pool ${name}); requests needing a session answer 503 until it is back`, back: `Redis connection back (pool ${name})` });
    this.#cluster = Boolean(config.cluster);
    this.#logger = logger;
    this.#sentinelWatch = config.sentinels ? new SentinelWatch(config, (to) => this.#masterSwitched(to), (message) => logger.warn({ pool: name }, message)) : null;
    this.#pool = createPool<RedisClient>(
      {
        create: () => this.#connect(),
        destroy: async (client) => this.#retire(client),
        validate: (client) => this.#healthy(client),
      },
      {
        min: config.min,
        max: config.max,
        acquireTimeoutMillis: config.acquire_timeout_ms,
        testOnBorrow: true,
        // LIFO: the hottest connection is reused, so shared writes batch the most commands.
        fifo: false,
        autostart: config.min > 0,
        evictionRunIntervalMillis: 30_000,
        idleTimeoutMillis: 300_000,
      },
    );
  }

  /** @internal
   * Borrows a connection, lets `issue` send its commands, gives the connection back at once and
   * then waits for the replies. `issue` must send every command synchronously, and may be run a
   * second time on a Redis Cluster (see below), so its commands must be safe to repeat.
   * @throws SessionStoreUnavailableError when no connection comes within acquire_timeout_ms, or
   *   Redis fails or does not answer within command_timeout_ms.
   */
  async run<T>(issue: (client: RedisClient) => Promise<T>): Promise<T> {
    const hot = this.#hot;
    const pending =
      hot !== null && hot.status === 'ready' && Date.now() - this.#hotSince < HOT_REUSE_MS && !this.#suspect.has(hot)
        ? this.#issue(hot, issue)
        : this.#send(await this.#borrow(), issue, true);
    try {
      return await pending;
    } catch (error) {
      if (!notRun(error)) throw this.unavailable(error);
      // ioredis follows MOVED/ASK itself, except in an auto-pipelined batch whose replies mix
      // redirections with results (commands of other requests for other slots of the same master,
      // during resharding): then each command gets the redirection as its error. That command did
      // not run and `issue` is repeatable, so send again, unbatched: ioredis follows each redirection.
      trace('pool %s: %s in a shared batch; issuing again without auto-pipelining', this.name, (error as Error).message);
      const again = this.#send(await this.#borrow(), issue, false);
      try {
        return await again;
      } catch (error) {
        throw this.unavailable(error);
      }
    }
  }

  /** @internal
   * As run(), for a write that counts only once `wait_replicas` replicas have it: a WAIT follows
   * the turn's writes on the connection (replica-wait.ts) without waiting for their replies, so it
   * adds no round trip, only the time the replicas take to acknowledge. With wait_replicas = 0
   * (the default) this is run().
   * @throws SessionStoreUnavailableError also when fewer replicas confirm within wait_timeout_ms:
   *   the master has the write, but a failover could lose it, so it must not be acknowledged.
   */
  runReplicated<T>(issue: (client: RedisClient) => Promise<T>): Promise<T> {
    const replicas = this.config.wait_replicas;
    if (replicas === 0) return this.run(issue);
    const timeoutMs = this.config.wait_timeout_ms;
    return this.run((client) => {
      const written = issue(client);
      const confirmed = replicasConfirming(client as Redis, replicas, timeoutMs);
      return Promise.all([written, confirmed]).then(([result, count]) => {
        if (count < replicas) {
          throw new SessionStoreUnavailableError(
            `Redis (pool '${this.name}') has the write, but only ${count} of ${replicas} replicas confirmed it within ${timeoutMs} ms (redis_connection_pool.${this.name}.wait_replicas)`,
          );
        }
        return result;
      });
    });
  }

  async #borrow(): Promise<RedisClient> {
    try {
      return await this.#pool.acquire();
    } catch (error) {
      const connectError = this.#lastConnectError;
      const why = connectError === null ? '' : `; the last connection attempt: Redis ${describeFault(connectError)}`;
      throw neverSent(new SessionStoreUnavailableError(
        `Redis pool '${this.name}' had no usable connection within ${this.config.acquire_timeout_ms} ms (redis_connection_pool.${this.name}.acquire_timeout_ms)${why}`,
        { cause: connectError ?? error },
      ));
    }
  }

  /** Lets `issue` send its commands on `client`, then gives the connection back at once. */
  #send<T>(client: RedisClient, issue: (client: RedisClient) => Promise<T>, pipelined: boolean): Promise<T> {
    // Safe to flip on a shared connection: `issue` sends synchronously, nothing else runs meanwhile.
    const options = client.options as { enableAutoPipelining?: boolean };
    if (!pipelined) options.enableAutoPipelining = false;
    try {
      return this.#issue(client, issue);
    } finally {
      if (!pipelined) options.enableAutoPipelining = true;
      else if (!this.#closing) {
        this.#hot = client;
        this.#hotSince = Date.now();
      }
      void this.#pool.release(client);
    }
  }

  /** Lets `issue` send its commands on `client` (borrowed, or the hot connection). */
  #issue<T>(client: RedisClient, issue: (client: RedisClient) => Promise<T>): Promise<T> {
    if (!this.#cluster) shareWrites(client as Redis);
    try {
      const pending = issue(client);
      pending.catch((error: unknown) => this.#failed(client, error));
      return pending;
    } finally {
      this.#lastUsed.set(client, Date.now());
    }
  }

  /**
   * @internal
   * Wraps a Redis fault in the typed error requests answer 503 with (keeps typed errors as they
   * are). The message is keepsake's own: Redis's text (addresses, WRONGPASS, OOM…) goes to the
   * reply's client otherwise; it stays in `cause`, which the log shows.
   */
  unavailable(error: unknown): Error {
    if (error instanceof SessionStoreUnavailableError) return error;
    const message = (error as Error)?.message ?? String(error);
    const reason = /timed? ?out/i.test(message)
      ? `did not answer within ${this.config.command_timeout_ms} ms (redis_connection_pool.${this.name}.command_timeout_ms)`
      : /maxRetriesPerRequest/.test(message)
        ? 'lost its connection and did not get it back in time'
        : describeFault(error);
    return new SessionStoreUnavailableError(`Redis (pool '${this.name}') ${reason}`, { cause: error });
  }

  /** True when a connection answers PING within the pool's bounds (used by GET /ready). */
  async ping(): Promise<boolean> {
    try {
      return (await this.run((client) => client.ping())) === 'PONG';
    } catch {
      return false;
    }
  }

  /** @internal A new connection outside the pool, for SUBSCRIBE or other exclusive use; the caller closes it. */
  dedicatedClient(purpose: string): RedisClient {
    const client = createRedisClient(this.config, `${this.name}:${purpose}`);
    if (this.#sentinelWatch !== null) {
      this.#sentinelWatch.start();
      this.#dedicated.add(client);
      client.once('end', () => this.#dedicated.delete(client));
      // Asked right after a switch, a sentinel that has not heard of it yet names the old master.
      client.on('ready', () => {
        if (this.#atMaster(client)) return;
        trace('pool %s: %s reached %s, not the master announced (%s); reconnecting', this.name, purpose, endpoint(client), this.#master);
        client.disconnect(true);
      });
    }
    return client;
  }

  /**
   * The sentinels named a new master: no connection made before is lent again (each is replaced
   * through the pool, whose new connections ask the sentinels), and the dedicated ones reconnect
   * (ioredis asks the sentinels, and a subscriber subscribes again).
   */
  #masterSwitched(to: string): void {
    this.#switches++;
    this.#master = to;
    this.#masterSince = Date.now();
    this.#logger.warn({ pool: this.name, master: to }, `Sentinel switched the master of pool ${this.name}: its connections are replaced`);
    for (const client of this.#lastUsed.keys()) this.#suspect.add(client);
    this.#hot = null;
    for (const client of this.#dedicated) if (client.status !== 'end') client.disconnect(true);
  }

  /** @internal Loads keepsake's Redis functions on every master (after "Function not found": a restarted Redis, a new master). */
  async loadFunctions(client?: RedisClient): Promise<void> {
    if (client === undefined) {
      await this.run((borrowed) => loadLibrary(borrowed));
      return;
    }
    await loadLibrary(client);
  }

  get size(): number {
    return this.#pool.size;
  }
  get borrowed(): number {
    return this.#pool.borrowed;
  }
  get pending(): number {
    return this.#pool.pending;
  }

  /** Waits for borrowed connections to come back, then closes every connection. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#hot = null;
    this.#sentinelWatch?.close();
    await this.#pool.drain();
    await this.#pool.clear();
  }

  /**
   * Healthy is what ioredis says it is (no PING per borrow), unless a command timed out on the
   * connection; one idle for IDLE_PING_AFTER_MS is PINGed first.
   */
  async #healthy(client: RedisClient): Promise<boolean> {
    if (client.status !== 'ready' || this.#suspect.has(client)) return false;
    const lastUsed = this.#lastUsed.get(client) ?? Date.now();
    if (Date.now() - lastUsed < IDLE_PING_AFTER_MS) return true;
    const timeoutMs = Math.min(IDLE_PING_TIMEOUT_MS, Math.floor(this.config.acquire_timeout_ms / 2));
    try {
      if ((await withTimeout(client.ping(), timeoutMs, 'idle PING')) === 'PONG') return true;
    } catch (error) {
      trace('pool %s: idle connection failed its PING: %s', this.name, (error as Error).message);
    }
    // Whatever cut this one cut the others idle as long (or idle long enough to need a PING: the
    // hot connection may have been used after this one): replace them all rather than PING each.
    const now = Date.now();
    for (const [other, otherLastUsed] of this.#lastUsed) if (otherLastUsed <= lastUsed || now - otherLastUsed >= IDLE_PING_AFTER_MS) this.#suspect.add(other);
    return false;
  }

  /**
   * Retires a connection a command timed out on (a network cut looks the same as a slow Redis), or
   * that reached a read-only replica (a failover demoted its server: a new connection finds the
   * master the sentinels name now).
   */
  #failed(client: RedisClient, error: unknown): void {
    if (/timed? ?out|^READONLY/i.test((error as Error)?.message ?? '')) {
      this.#suspect.add(client);
      if (this.#hot === client) this.#hot = null;
    }
  }

  async #connect(): Promise<RedisClient> {
    this.#sentinelWatch?.start();
    const switches = this.#switches;
    const client = createRedisClient(this.config, this.name);
    // Silence the default "Unhandled error event" log; failures surface through commands. The
    // event has the real cause of a failed connect (ECONNREFUSED, WRONGPASS); connect() rejects
    // with "Connection is closed" or a timeout.
    let connectError: unknown = null;
    client.on('error', (error: Error) => {
      redactCommand(error);
      connectError ??= error;
      this.#outage.lost(error);
    });
    client.on('close', () => this.#lastUsed.has(client) && !this.#closing && this.#outage.lost(new Error('connection closed')));
    client.on('ready', () => this.#outage.back());
    try {
      await withTimeout(client.connect(), this.config.connect_timeout_ms, 'connect');
      // Right after a switch a sentinel that has not heard of it yet names the old master: leave
      // it before anything is sent there (the library load is a write).
      if (!this.#atMaster(client)) throw new Error(`reached ${endpoint(client)}, not the master the sentinels announced (${this.#master})`);
      // Not fatal: a Redis out of memory refuses FUNCTION LOAD but still serves reads; a missing
      // library is loaded again on "Function not found".
      await loadLibrary(client).catch((error: Error) => trace('pool %s: function load: %s', this.name, error.message));
      // A Redis that restarted has lost the library: load it again before queued commands run.
      client.on('ready', () => void loadLibrary(client).catch((error: Error) => trace('function load: %s', error.message)));
      trace('pool %s: connection created', this.name);
      this.#lastConnectError = null;
      this.#outage.back();
      this.#lastUsed.set(client, Date.now());
      // The sentinels named a new master while it connected: it may have reached the old one.
      if (this.#switches !== switches) this.#suspect.add(client);
      return client;
    } catch (error) {
      this.#lastConnectError = redactCommand(connectError ?? error);
      this.#outage.lost(error);
      client.disconnect();
      await new Promise((resolve) => setTimeout(resolve, CREATE_FAILURE_PAUSE_MS));
      throw error;
    }
  }

  /**
   * False when `client` is connected elsewhere than the master the sentinels announced last, in
   * the SWITCH_SETTLE_MS after the announcement. True before any, after that time (every sentinel
   * has heard of it by then: a difference left means the addresses are not comparable, say an
   * address the sentinels announce that is not the one the socket sees), and when the announced
   * host is a name rather than an address.
   */
  #atMaster(client: RedisClient): boolean {
    const master = this.#master;
    if (master === null || Date.now() - this.#masterSince > SWITCH_SETTLE_MS) return true;
    const at = master.lastIndexOf(':');
    const host = master.slice(0, at);
    if (isIP(host) === 0) return true;
    return endpoint(client) === `${host}:${master.slice(at + 1)}`;
  }

  #retire(client: RedisClient): void {
    this.#lastUsed.delete(client);
    if (this.#hot === client) this.#hot = null;
    // Commands already issued on it may still be completing after a reconnect; command_timeout_ms
    // bounds them, so disconnect only after that.
    if (client.status === 'ready') {
      void client.quit().catch(() => client.disconnect());
      return;
    }
    setTimeout(() => client.disconnect(), this.config.command_timeout_ms + 50).unref();
  }
}

/** The `address:port` a connection's socket is connected to ('' when it has none). */
function endpoint(client: RedisClient): string {
  const socket = (client as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
  if (socket?.remoteAddress === undefined) return '';
  return `${socket.remoteAddress.replace(/^::ffff:/, '')}:${socket.remotePort}`;
}

/**
 * What went wrong, in keepsake's words: never Redis's text, which may name hosts, users or
 * memory figures (the error itself is kept as `cause` for the log).
 */
export function describeFault(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const message = (error as Error)?.message ?? String(error);
  if (/^(WRONGPASS|NOAUTH|NOPERM)\b/.test(message) || /invalid (username-)?password/i.test(message)) {
    return 'refused keepsake\'s credentials (check username and password)';
  }
  if (/\bOOM command not allowed|^OOM\b/.test(message)) return 'is out of memory and refused the write';
  if (/\bREADONLY\b/.test(message)) return 'is a read-only replica and refused the write';
  // The store tells a lost library by these words in the message (it loads it and retries once).
  if (/function not found/i.test(message)) return 'has lost keepsake\'s function library (function not found)';
  if (/^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test(message)) return 'is not ready to serve';
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE)$/.test(code)) return 'could not be reached';
  if (/Connection is closed|Stream isn't writeable|connect timed out/i.test(message)) return 'could not be reached';
  return 'failed (the log has the detail)';
}

/**
 * Errors that mean the command did not run, seen on a Redis Cluster during resharding: a
 * redirection (`MOVED <slot> <host:port>`, `ASK …`), or an auto-pipelined batch ioredis refused to
 * send because the slot map changed after the batch was formed ("…same slots allocation group").
 */
function notRun(error: unknown): boolean {
  const message = (error as Error)?.message ?? '';
  return /^(MOVED|ASK) \d+ /.test(message) || message.includes('should belong to the same slots allocation group');
}

async function loadLibrary(client: RedisClient): Promise<void> {
  const targets: Redis[] = 'nodes' in client ? client.nodes('master') : [client];
  await Promise.all(targets.map((node) => node.function('LOAD', 'REPLACE', LIBRARY_SOURCE)));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

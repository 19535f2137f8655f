/**
 * @module The per-user index: which sessions a user is logged in with, so "log out everywhere"
 * and `keepsake session list --user` can find them.
 *
 * One sorted set per user, `{key_prefix}user:<userId>` (session ids never contain `:`, so it can
 * never be a session's key). Members are session ids scored by the time that session ends at the
 * latest: its absolute end (`m:c` + absolute_lifespan), or +inf when absolute_lifespan = 0.
 * Like every keepsake key it has a TTL, never shorter than its longest-lived session's:
 * - absolute_lifespan > 0: the index expires at its members' latest absolute end (a session's
 *   Redis TTL never runs past its own absolute end), so loads never touch the index;
 * - absolute_lifespan = 0: sessions roll forever, so each load of a logged-in session pushes the
 *   index TTL forward too (`PEXPIRE … GT`, sent without waiting for it).
 * Ids of sessions that ended by idle timeout stay until a listing prunes them (an EXISTS per id).
 * A login writes its new id here before the session moves to it (see SessionManager.regenerate),
 * so an id whose session is not in the store yet may be a login in flight: it is pruned only once
 * this node has seen it missing for longer than any login can take (`#graceMs`).
 * Every command touches one key, so this works unchanged on Redis Cluster, where the index and
 * the sessions live in different slots.
 */
import type { KeepsakeConfig } from '../config/schema.js';
import type { RedisPool } from '../redis/redis-pool.js';
import type { SessionStore } from './session-store.js';

/** Headroom on the index TTL over a rolling session's, for the write that follows a load. */
const TTL_MARGIN_MS = 10_000;
/** Past this many ids, a login also prunes ids of sessions that ended (one EXISTS each). */
const PRUNE_ABOVE = 32;
/** The longest reconnect backoff (redis-client-factory's reconnectDelay). */
const RECONNECT_CAP_MS = 2000;
/** Ids seen missing that a node keeps track of at most (older ones are forgotten first). */
const MAX_MISSING_TRACKED = 10_000;

const ignore = () => undefined;

export class UserIndex {
  readonly #pool: RedisPool;
  readonly #store: SessionStore;
  readonly #prefix: string;
  readonly #lifespanMs: number;
  readonly #absoluteMs: number;
  /** How long an id must have been seen missing before it is pruned: far past a login's bounds. */
  readonly #graceMs: number;
  /** Index ids whose session this node found missing, and when it first did. */
  readonly #missingSince = new Map<string, number>();

  constructor({ config, sessionStore }: { config: KeepsakeConfig; sessionStore: SessionStore }) {
    this.#store = sessionStore;
    this.#pool = sessionStore.pool;
    this.#prefix = `${config.session.key_prefix}user:`;
    this.#lifespanMs = config.session.cookie_lifespan * 1000;
    this.#absoluteMs = config.session.absolute_lifespan * 1000;
    // A login's two steps (index add, then the commit) each wait at most acquire + command
    // timeouts; a re-send after a reconnect lands within the reconnect backoff (≤ 2 s). Twice that.
    const { acquire_timeout_ms, command_timeout_ms } = this.#pool.config;
    this.#graceMs = 4 * (acquire_timeout_ms + command_timeout_ms) + 2 * RECONNECT_CAP_MS;
  }

  /** The Redis key of `userId`'s index. */
  key(userId: string): string {
    return this.#prefix + userId;
  }

  /** Records that session `id` (created at `createdAt`, idle `lifespan` s if its login chose one) belongs to `userId`. */
  async add(userId: string, id: string, createdAt: number, lifespan?: number): Promise<void> {
    const key = this.key(userId);
    const now = Date.now();
    const end = this.#absoluteMs > 0 ? createdAt + this.#absoluteMs : undefined;
    const expireAt = end ?? now + this.#idleMs(lifespan) + TTL_MARGIN_MS;
    // Replicated like the login's rename (wait_replicas): "log out everywhere" must find it after a failover.
    const count = await this.#pool.runReplicated((client) => {
      // One tick, one connection: Redis runs them in order. NX gives a new index its first TTL
      // (GT treats "no TTL" as infinite), GT only ever lengthens it.
      const added = client.zadd(key, end ?? '+inf', id);
      const pruned = client.zremrangebyscore(key, '-inf', `(${now}`);
      const first = client.pexpireat(key, expireAt, 'NX');
      const longer = client.pexpireat(key, expireAt, 'GT');
      const count = client.zcard(key);
      return Promise.all([added, pruned, first, longer, count]).then((replies) => replies[4]);
    });
    if (count > PRUNE_ABOVE) void this.list(userId).catch(ignore);
  }

  /** Forgets session ids of `userId` (logout, destroy). */
  async remove(userId: string, ...ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const key = this.key(userId);
    await this.#pool.run((client) => client.zrem(key, ...ids));
  }

  /**
   * Keeps the index alive as long as a rolling session that was just used (absolute_lifespan = 0
   * only; otherwise its TTL is already fixed at the right end). Sent without waiting: a failure
   * costs nothing now, and a later load retries.
   */
  touch(userId: string, lifespan?: number): void {
    if (this.#absoluteMs > 0) return;
    const key = this.key(userId);
    void this.#pool.run((client) => client.pexpire(key, this.#idleMs(lifespan) + TTL_MARGIN_MS, 'GT')).catch(ignore);
  }

  /** A session's idle lifespan (ms): the one its login chose, else cookie_lifespan. */
  #idleMs(lifespan: number | undefined): number {
    return lifespan === undefined ? this.#lifespanMs : lifespan * 1000;
  }

  /** Every session id `userId` is logged in with right now; ids of ended sessions are pruned. */
  async list(userId: string): Promise<string[]> {
    const key = this.key(userId);
    const now = Date.now();
    const ids = await this.#pool.run((client) => {
      const pruned = client.zremrangebyscore(key, '-inf', `(${now}`);
      const ids = client.zrange(key, 0, '-1');
      return Promise.all([pruned, ids]).then((replies) => replies[1]);
    });
    if (ids.length === 0) return [];
    // Separate single-key commands: on a cluster each goes to its own slot's node.
    const exists = await this.#pool.run((client) => Promise.all(ids.map((id) => client.exists(this.#store.key(id)))));
    const missing = ids.filter((_, index) => exists[index] === 0);
    if (missing.length > 0) await this.prune(userId, missing);
    return ids.filter((_, index) => exists[index] !== 0);
  }

  /**
   * Forgets ids of `userId` whose sessions were found missing from the store, each only once it
   * has been missing for longer than a login in flight can take: removing the id of a login whose
   * session has not moved to it yet would let that session escape "log out everywhere".
   */
  async prune(userId: string, missing: readonly string[]): Promise<void> {
    const now = Date.now();
    const due: string[] = [];
    for (const id of missing) {
      const since = this.#missingSince.get(id);
      if (since === undefined) this.#missingSince.set(id, now);
      else if (now - since >= this.#graceMs) {
        due.push(id);
        this.#missingSince.delete(id);
      }
    }
    this.#forgetOldMissing(now);
    if (due.length > 0) await this.remove(userId, ...due);
  }

  /** Bounds the ids tracked: an id not seen again for ten grace periods is dropped (Map order is insertion order). */
  #forgetOldMissing(now: number): void {
    for (const [id, since] of this.#missingSince) {
      if (this.#missingSince.size <= MAX_MISSING_TRACKED && now - since < 10 * this.#graceMs) break;
      this.#missingSince.delete(id);
    }
  }

  /** Every id in `userId`'s index, without checking which sessions still exist. */
  async members(userId: string): Promise<string[]> {
    const key = this.key(userId);
    return this.#pool.run((client) => client.zrange(key, 0, '-1'));
  }
}

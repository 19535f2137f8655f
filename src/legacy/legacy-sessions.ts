/**
 * @module Adopting the sessions of @fastify/session and express-session (connect-redis: one JSON
 * blob per session at `{legacy key_prefix}{id}`) as keepsake sessions, once each, across nodes.
 *
 * The claim is one Redis command: `SET {key_prefix}legacy:<legacyId> pending:<token> NX PX … GET`.
 * The request that sets it builds the keepsake session; every other request (a parallel fetch of
 * the same page, another node) gets the marker's value back and waits for the session it will
 * name, or joins it at once. Legacy key, marker and session live in different hash slots on a
 * Redis Cluster, so every step touches one key, in an order where a crash at any point loses
 * nothing:
 *
 *   1. claim: marker = pending token, short TTL (a crashed claimer's marker expires, the next
 *      request claims again);
 *   2. read the legacy JSON (none, or not an object: release the marker, nothing to adopt);
 *   3. store the keepsake session (data, user logged in through SessionManager's login path);
 *   4. marker = the new session's id (XX), TTL = how long a legacy cookie may still join it;
 *   5. delete the legacy key (only now: before this a crash leaves the legacy session intact).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KeepsakeConfig, LegacySessionsConfig } from '../config/schema.js';
import { LegacyAdoptionPendingError } from '../errors.js';
import type { KeepsakeLogger } from '../logger.js';
import type { RedisClient } from '../redis/redis-client-factory.js';
import type { RedisPool } from '../redis/redis-pool.js';
import type { RedisPools } from '../redis/redis-pools.js';
import type { Session } from '../session/session.js';
import { LegacyCookie } from './legacy-cookie.js';
import { parseLegacySession, type LegacyContent } from './legacy-values.js';

/** The marker's value while its claimer builds the session. */
const PENDING = 'pending:';
/** TTL of a pending marker: longer than any claimer takes (each step is bounded), short enough that a crash costs little. */
const CLAIM_MS = 15_000;
/** How long a legacy cookie may still join the session a live request adopted it into (its parallel requests). */
const JOIN_WINDOW_MS = 60_000;
/** How often a request that lost the claim looks again. */
const POLL_MS = 25;
/** TTL of the adoption counters, refreshed on every adoption (every keepsake key has a TTL). */
const STATS_TTL_MS = 90 * 86400_000;

/** What the SessionManager does for an adoption: store a session made of legacy content, or load one to join. */
export interface LegacyAdopter {
  store(content: LegacyContent): Promise<{ session: Session; skipped: number }>;
  join(id: string): Promise<Session | null>;
}

/** Where adoptions are counted (the Prometheus metrics). */
export interface LegacyObserver {
  legacyAdopted(skippedValues: number): void;
}

export interface LegacyStats {
  /** Legacy keys still in Redis (SCAN of the legacy key_prefix). */
  readonly left: number;
  /** Legacy sessions adopted so far (all nodes and the CLI). */
  readonly adopted: number;
  /** Values of adopted sessions that keepsake refused and skipped. */
  readonly skippedValues: number;
}

export interface AdoptAllReport {
  readonly adopted: number;
  /** Claimed by a live request at that moment (it adopts them), or by a claimer that crashed (its claim expires within 15 s): run again. */
  readonly busy: number;
  /** Keys that were not a legacy session (not a JSON object), vanished meanwhile, or were adopted already (deleted now). */
  readonly gone: number;
  readonly failed: number;
  readonly batches: number;
  readonly largestBatch: number;
}

export class LegacySessions {
  readonly cookie: LegacyCookie;
  readonly #config: LegacySessionsConfig;
  readonly #legacyPool: RedisPool;
  readonly #pool: RedisPool;
  readonly #markerPrefix: string;
  readonly #statsKey: string;
  readonly #lifespanMs: number;
  readonly #waitMs: number;
  readonly #observer: LegacyObserver;
  readonly #logger: KeepsakeLogger;

  constructor({ config, redisPools, observer, logger }: { config: KeepsakeConfig; redisPools: RedisPools; observer: LegacyObserver; logger: KeepsakeLogger }) {
    const legacy = config.legacy_sessions;
    if (legacy === undefined) throw new Error('LegacySessions needs a [legacy_sessions] section');
    this.#config = legacy;
    const secure = config.session.cookie_secure === 'auto' ? process.env.NODE_ENV === 'production' : config.session.cookie_secure;
    this.cookie = new LegacyCookie(legacy, secure);
    this.#legacyPool = redisPools.get(legacy.redis_connection_pool);
    this.#pool = redisPools.get(config.session.redis_connection_pool);
    this.#markerPrefix = `${config.session.key_prefix}legacy:`;
    this.#statsKey = `${config.session.key_prefix}legacy-stats`;
    this.#lifespanMs = config.session.cookie_lifespan * 1000;
    // A request waits within its usual bounds: one pool acquire and one command's time.
    this.#waitMs = this.#pool.config.acquire_timeout_ms + this.#pool.config.command_timeout_ms;
    this.#observer = observer;
    this.#logger = logger;
  }

  /**
   * The keepsake session of legacy session `legacyId` for a request that presented its cookie:
   * adopted now, or the one a concurrent request (or `adopt-all`) adopted it into. Null when there
   * is nothing to adopt (unknown or expired legacy id, or its keepsake session has ended since).
   * @throws LegacyAdoptionPendingError (503, retryable) when another request holds the claim past the wait.
   */
  async adopt(legacyId: string, adopter: LegacyAdopter): Promise<Session | null> {
    const began = Date.now();
    const token = PENDING + randomBytes(9).toString('base64url');
    for (;;) {
      const holder = await this.#claim(legacyId, token);
      if (holder === null) return this.#adoptClaimed(legacyId, token, adopter, JOIN_WINDOW_MS);
      if (!holder.startsWith(PENDING)) {
        // Adopted already (the marker names a stored session). A legacy key still there was left
        // by a claimer that crashed before its last step: it was adopted, so it goes now, or a
        // later claim (after the marker expires) would adopt it a second time.
        await this.#legacyPool.run((client) => client.del(this.#legacyKey(legacyId)));
        const session = await adopter.join(holder);
        // A marker adopt-all left (cookie_lifespan) is needed no longer once its visitor is back.
        if (session !== null) void this.#pool.run((client) => client.pexpire(this.#marker(legacyId), JOIN_WINDOW_MS, 'LT')).catch(() => undefined);
        // Null: that session has ended since (logout, a login moved it, expiry): the legacy cookie is spent.
        return session;
      }
      const waited = Date.now() - began;
      if (waited >= this.#waitMs) throw new LegacyAdoptionPendingError(waited);
      await sleep(POLL_MS);
    }
  }

  /**
   * Adopts every legacy session left, `batch` keys at a time (SCAN, then those keys concurrently),
   * yielding to live requests between batches. Resumable: adopted keys are gone, so a second run
   * picks up what is left. Sessions adopted here are reached by their visitor's legacy cookie
   * through the marker, which lives as long as the session would unused (cookie_lifespan).
   */
  async adoptAll(adopter: LegacyAdopter, options: { batch?: number; onBatch?: (size: number, report: AdoptAllReport) => void } = {}): Promise<AdoptAllReport> {
    const batch = options.batch ?? 100;
    const report = { adopted: 0, busy: 0, gone: 0, failed: 0, batches: 0, largestBatch: 0 };
    for await (const keys of this.#scan(batch)) {
      const outcomes = await Promise.all(keys.map((key) => this.#adoptOne(key.slice(this.#config.key_prefix.length), adopter)));
      for (const outcome of outcomes) report[outcome]++;
      report.batches++;
      report.largestBatch = Math.max(report.largestBatch, keys.length);
      options.onBatch?.(keys.length, { ...report });
      await new Promise((resolve) => setImmediate(resolve)); // live requests go first
    }
    return report;
  }

  /** How many legacy sessions are left, and the adoption counters. */
  async stats(): Promise<LegacyStats> {
    let left = 0;
    for await (const keys of this.#scan(1000)) left += keys.length;
    const counters = await this.#pool.run((client) => client.hgetall(this.#statsKey));
    return { left, adopted: Number(counters.adopted ?? 0), skippedValues: Number(counters.skipped ?? 0) };
  }

  async #adoptOne(legacyId: string, adopter: LegacyAdopter): Promise<'adopted' | 'busy' | 'gone' | 'failed'> {
    try {
      const token = PENDING + randomBytes(9).toString('base64url');
      const holder = await this.#claim(legacyId, token);
      if (holder?.startsWith(PENDING)) return 'busy';
      if (holder !== null) {
        // Adopted already; its claimer crashed before deleting the legacy key (see adopt()).
        await this.#legacyPool.run((client) => client.del(this.#legacyKey(legacyId)));
        return 'gone';
      }
      return (await this.#adoptClaimed(legacyId, token, adopter, this.#lifespanMs)) === null ? 'gone' : 'adopted';
    } catch (error) {
      this.#logger.warn({ err: error }, 'could not adopt a legacy session; it stays for the next run');
      return 'failed';
    }
  }

  /** Steps 2–5 of the module comment, for the holder of the claim. */
  async #adoptClaimed(legacyId: string, token: string, adopter: LegacyAdopter, joinableMs: number): Promise<Session | null> {
    const marker = this.#marker(legacyId);
    const legacyKey = this.#legacyKey(legacyId);
    const json = await this.#legacyPool.run((client) => client.get(legacyKey));
    const content = json === null ? null : parseLegacySession(json, this.#config.user_field);
    if (content === null) {
      if (json !== null) this.#logger.warn({ prefix: this.#config.key_prefix }, 'a legacy session key does not hold a JSON object; ignored');
      await this.#pool.run((client) => client.del(marker));
      return null;
    }
    const { session, skipped } = await adopter.store(content);
    const previous = await this.#pool.run((client) => (client as SetWithGet).set(marker, session.id, 'PX', joinableMs, 'XX', 'GET'));
    if (previous !== token) {
      // Only if this claimer stalled past CLAIM_MS: another may be adopting the same legacy session.
      this.#logger.warn({ user: session.user }, 'a legacy adoption took longer than its claim; another request may have adopted the same legacy session');
    }
    await this.#legacyPool.run((client) => client.del(legacyKey));
    this.#observer.legacyAdopted(skipped);
    await this.#pool
      .run((client) => Promise.all([client.hincrby(this.#statsKey, 'adopted', 1), client.hincrby(this.#statsKey, 'skipped', skipped), client.pexpire(this.#statsKey, STATS_TTL_MS)]))
      .catch((error: unknown) => this.#logger.warn({ err: error }, 'could not count a legacy adoption (keepsake legacy stats)'));
    return session;
  }

  /** The one-command claim: null if this request now holds it, else the marker's value. */
  #claim(legacyId: string, token: string): Promise<string | null> {
    return this.#pool.run((client) => (client as SetWithGet).set(this.#marker(legacyId), token, 'PX', CLAIM_MS, 'NX', 'GET'));
  }

  /** The legacy keys, `count` at a time, on every master of a cluster. */
  async *#scan(count: number): AsyncGenerator<string[]> {
    const match = `${this.#config.key_prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    const masters = await this.#legacyPool.run(async (client) => ('nodes' in client ? client.nodes('master').length : 1));
    for (let index = 0; index < masters; index++) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#legacyPool.run((client) => node(client, index).scan(cursor, 'MATCH', match, 'COUNT', count));
        cursor = next;
        // COUNT is a hint: a reply may hold more, and a batch must stay bounded.
        for (let at = 0; at < keys.length; at += count) yield keys.slice(at, at + count);
      } while (cursor !== '0');
    }
  }

  #marker(legacyId: string): string {
    return this.#markerPrefix + legacyId;
  }

  #legacyKey(legacyId: string): string {
    return this.#config.key_prefix + legacyId;
  }
}

/** ioredis types SET … NX GET (Redis 7) only loosely. */
type SetWithGet = { set(key: string, value: string, px: 'PX', ms: number, mode: 'NX' | 'XX', get: 'GET'): Promise<string | null> };

function node(client: RedisClient, index: number) {
  return 'nodes' in client ? client.nodes('master')[index]! : client;
}

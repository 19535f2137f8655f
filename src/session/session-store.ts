/**
 * @module Sessions in Redis: one hash per session, `{key_prefix}{id}`, one field per data key.
 * A load is one round trip (HGETALL + PEXPIRE in the same tick, one socket write); every write is
 * one FCALL of the keepsake library, which also publishes the change notice.
 */
import { createHash } from 'node:crypto';
import type { KeepsakeConfig } from '../config/schema.js';
import { SessionGoneError, SessionStoreUnavailableError, SessionTooLargeError } from '../errors.js';
import { keySlot } from '../redis/cluster-slot.js';
import { hgetallRaw, type RedisClient } from '../redis/redis-client-factory.js';
import { OperationIds } from '../redis/operation-id.js';
import { FIELD, FUNCTION, LARGE_SESSION_BYTES, LOAD_LARGE, WRITE_CONFLICT, WRITE_EXPIRED, WRITE_GONE, WRITE_OK, WRITE_REPEATED, WRITE_TOO_LARGE, WRITE_UNKNOWN, writeHeader } from '../redis/redis-functions.js';
import { fcallNotingResend, fcallWrite } from '../redis/resend-marked-command.js';
import { wasNeverSent, type RedisPool } from '../redis/redis-pool.js';
import type { RedisPools } from '../redis/redis-pools.js';
import { DEVICE_FIELD } from './device-info.js';
import type { SessionChanges } from './session-data.js';
import { SessionCache, type CachedSession } from './session-cache.js';
import { ID_LENGTH, newSessionId, newSessionIdInSlot } from './session-id.js';
import { TtlRefreshes } from './ttl-refreshes.js';
import type { SessionMeta } from './session.js';

/** A session as read from Redis. */
export interface StoredSession {
  /** Data fields by user key (msgpack bytes, decoded lazily). */
  readonly data: Map<string, Buffer>;
  /** Flash values left by the previous request, by key. */
  readonly flash: Map<string, Buffer>;
  readonly meta: SessionMeta;
}

/** Creation metadata, written with the first write of a new session. */
export interface NewSessionMeta {
  readonly createdAt: number;
  readonly anonTag: string;
}

export interface WriteRequest {
  /** Present when the session does not exist yet: the write creates it. */
  readonly create?: NewSessionMeta | undefined;
  readonly changes: SessionChanges;
  /** Extra raw fields to set (flash, user binding), already namespaced. */
  readonly fields?: ReadonlyMap<string, Buffer | string>;
  /** Extra raw fields to delete, already namespaced. */
  readonly deleteFields?: readonly string[];
  /** When the session was created (`m:c`): its TTL never runs past its absolute end. */
  readonly createdAt?: number | undefined;
  /** The idle lifespan (s) a login chose for this session (`m:l`), instead of cookie_lifespan. */
  readonly sessionLifespan?: number | undefined;
  /** Compare-and-set: write only if `key` still holds `expected` (undefined = absent). */
  readonly compare?: { readonly key: string; readonly expected: Buffer | undefined };
  /**
   * False when this request refreshed the TTL moments ago (the load does): the write leaves it.
   * Always refreshed when creating, and when the TTL is cut short by the absolute end.
   * @default true
   */
  readonly refreshTtl?: boolean;

  /**
   * The TTL to give instead of cookie_lifespan (ms), when shorter: an empty session's
   * `empty_session_lifespan`. Always sent.
   */
  readonly lifespanMs?: number | undefined;
}

export type WriteOutcome = { readonly ok: true } | { readonly ok: false; readonly current: Buffer | undefined };

/** Change notices on the session's own channel (named like its key): changed, renamed (regenerate) and destroyed. */
export type SessionNotice =
  | { readonly kind: 'changed'; readonly id: string }
  | { readonly kind: 'renamed'; readonly id: string; readonly to: string }
  | { readonly kind: 'destroyed'; readonly id: string };

export function encodeNotice(notice: SessionNotice): string {
  return notice.kind === 'renamed' ? `r:${notice.id}:${notice.to}` : `${notice.kind[0]}:${notice.id}`;
}

export function decodeNotice(text: string): SessionNotice | null {
  const [kind, id, to] = text.split(':');
  if (id === undefined) return null;
  if (kind === 'c') return { kind: 'changed', id };
  if (kind === 'd') return { kind: 'destroyed', id };
  if (kind === 'r' && to !== undefined) return { kind: 'renamed', id, to };
  return null;
}

/**
 * Metadata field: when the cookie was last sent (ms), so its Max-Age can be kept in step with the
 * TTL. Absent until the cookie is first re-sent (then m:c stands for it).
 */
export const COOKIE_SENT_FIELD = 'm:k';

/** How many sessions' chosen lifespans a node remembers (the oldest learned are forgotten first). */
const LIFESPANS_KEPT = 10_000;

type WriteReply = [number, Buffer | null | number | undefined];

/** A write's arguments as sent, and its operation id (the version it gives the session). */
interface PreparedWrite {
  readonly args: (string | Buffer)[];
  readonly firstDelete: number;
  readonly opId: string;
  /** The session's idle lifespan (ms) when the write gives it that full TTL (not a short or cut one). */
  readonly fullTtlMs: number | undefined;
}

type FcallBuffer = (name: string, numkeys: number, ...args: (string | Buffer | number)[]) => Promise<unknown>;
type FcallSender = (client: RedisClient, name: string, keys: string[], args: (string | Buffer)[]) => Promise<unknown>;

export class SessionStore {
  readonly #pool: RedisPool;
  readonly #prefix: string;
  readonly #ttlMs: string;
  readonly #absoluteMs: number;
  readonly #maxBytes: string;
  /** Sessions this node gave their full TTL lately: a read within ttl_refresh_slack sends no PEXPIRE. */
  readonly #refreshes: TtlRefreshes;
  readonly #cache = new SessionCache();
  readonly #ops = new OperationIds();
  /**
   * Lifespans (s) logins chose, by session id, as this node wrote or read them: a load sends the
   * right TTL in its one round trip. An id's `m:l` never changes (a login that changes it moves
   * the session to a new id), so an entry is never stale.
   */
  readonly #lifespans = new Map<string, number>();

  /** @internal Hits and misses of this node's copies of large sessions (metrics read them). */
  get cacheStats(): { readonly hits: number; readonly misses: number } {
    return this.#cache.stats;
  }

  constructor({ config, redisPools }: { config: KeepsakeConfig; redisPools: RedisPools }) {
    this.#pool = redisPools.get(config.session.redis_connection_pool);
    this.#prefix = config.session.key_prefix;
    this.#ttlMs = String(config.session.cookie_lifespan * 1000);
    this.#absoluteMs = config.session.absolute_lifespan * 1000;
    this.#maxBytes = String(config.session.max_session_bytes);
    this.#refreshes = new TtlRefreshes(config.session.ttl_refresh_slack / 100);
  }

  get pool(): RedisPool {
    return this.#pool;
  }

  /** The Redis key of session `id`. */
  key(id: string): string {
    return this.#prefix + id;
  }

  /**
   * Reads a session and refreshes its TTL in one round trip (HGETALL + PEXPIRE in the same tick,
   * one socket write); null if it does not exist. The PEXPIRE is left out while this node's last
   * refresh of the session is within ttl_refresh_slack (TtlRefreshes; 0: never). A large session this
   * node keeps a copy of is checked by version instead (see #loadLarge).
   */
  async load(id: string, extend = true): Promise<StoredSession | null> {
    const key = this.key(id);
    let stored: StoredSession | null;
    if (this.#cache.has(id)) {
      const refresh = extend && this.#refreshes.due(id, Number(this.#idleMs(this.#lifespans.get(id))));
      try {
        stored = await this.#loadLarge(id, key, refresh);
      } catch (error) {
        this.#refreshes.forget(id);
        throw error;
      }
      if (stored === null) this.#refreshes.forget(id);
      else if (refresh) this.#refreshes.refreshed(id, Number(this.#idleMs(stored.meta.lifespan)));
    } else {
      const sentTtl = this.#idleMs(this.#lifespans.get(id));
      const refresh = extend && this.#refreshes.due(id, Number(sentTtl));
      let hash: Buffer[];
      try {
        hash = await this.#pool.run((client) => {
          const read = hgetallRaw(client, key);
          if (refresh) void client.pexpire(key, sentTtl).catch(() => undefined); // same tick: same write to the socket
          return read;
        });
      } catch (error) {
        this.#refreshes.forget(id);
        throw error;
      }
      stored = parseHash(hash);
      if (stored === null) {
        this.#refreshes.forget(id);
        return null;
      }
      if (dataBytes(stored) > LARGE_SESSION_BYTES) this.#keep(id, hash, stored);
      const lifespan = stored.meta.lifespan;
      if (lifespan !== undefined) this.#learnLifespan(id, lifespan);
      // The refresh above did not know the m:l this node had not seen yet: a session whose login
      // chose its lifespan gets that TTL (cut at its absolute end). Waited for when shorter, so
      // the key never outlives it.
      if (refresh && this.#idleMs(lifespan) !== sentTtl) {
        const ttl = this.ttlMs(stored.meta.createdAt, lifespan);
        const corrected = this.#pool.run((client) => client.pexpire(key, ttl));
        if (Number(ttl) < Number(sentTtl)) await corrected;
        else void corrected.catch(() => undefined);
        this.#refreshes.refreshed(id, Number(this.#idleMs(lifespan)));
        return stored;
      }
      if (refresh) this.#refreshes.refreshed(id, Number(sentTtl));
    }
    // The refresh above is blind to m:c: near the absolute end, pull the expiry back to it, so no
    // key outlives absolute_lifespan (only in a session's last lifespan, and not waited for).
    if (stored !== null && this.#absoluteMs > 0) {
      const end = stored.meta.createdAt + this.#absoluteMs;
      if (end < Date.now() + Number(this.#idleMs(stored.meta.lifespan))) void this.#pool.run((client) => client.pexpireat(key, end, 'LT')).catch(() => undefined);
    }
    return stored;
  }

  /**
   * The load function: for a session still large it answers with the version alone, and this
   * node's copy serves when it is at that version; else (written elsewhere) HGETALL reads it anew.
   */
  async #loadLarge(id: string, key: string, refresh: boolean): Promise<StoredSession | null> {
    // The function itself gives the TTL of m:l when the login chose one.
    const reply = (await this.#fcall(FUNCTION.load, key, [refresh ? this.#ttlMs : '0'])) as (Buffer | number | null)[];
    if (reply[0] !== LOAD_LARGE) {
      this.#cache.drop(id); // gone, or small again: the whole hash came back
      return parseHash(reply as Buffer[]);
    }
    const [, version, created, anon, user, lifespan] = reply as [number, Buffer | null, Buffer | null, Buffer | null, Buffer | null, Buffer | null | undefined];
    const copy = version === null ? undefined : this.#cache.take(id, version.toString());
    if (copy !== undefined && created !== null) return { data: new Map(copy.data), flash: new Map(copy.flash), meta: meta(created, anon, user, lifespan ?? null) };
    const hash = await this.#pool.run((client) => hgetallRaw(client, key));
    const stored = parseHash(hash);
    if (stored !== null) this.#keep(id, hash, stored);
    else this.#cache.drop(id);
    return stored;
  }

  #keep(id: string, hash: Buffer[], stored: StoredSession): void {
    const version = versionOf(hash);
    if (version !== undefined) this.#cache.keep(id, version, stored.data, stored.flash);
  }

  /**
   * The TTL (ms) a write gives a session created at `createdAt`: cookie_lifespan (or the
   * `lifespan` in seconds its login chose), cut short so it never runs past the absolute end
   * (absolute_lifespan after creation).
   */
  ttlMs(createdAt?: number, lifespan?: number): string {
    const full = this.#idleMs(lifespan);
    if (createdAt === undefined || this.#absoluteMs === 0) return full;
    const left = createdAt + this.#absoluteMs - Date.now();
    return left < Number(full) ? String(Math.max(1, left)) : full;
  }

  #learnLifespan(id: string, lifespan: number): void {
    if (this.#lifespans.size >= LIFESPANS_KEPT && !this.#lifespans.has(id)) this.#lifespans.delete(this.#lifespans.keys().next().value!);
    this.#lifespans.set(id, lifespan);
  }

  /** A session's idle lifespan (ms): the `lifespan` (s) its login chose, else cookie_lifespan. */
  #idleMs(lifespan: number | undefined): string {
    return lifespan === undefined ? this.#ttlMs : String(lifespan * 1000);
  }

  /** True when this node gave session `id` its full TTL at or after `since` (ms): a load did, or a write. */
  refreshedSince(id: string, since: number): boolean {
    return this.#refreshes.since(id, since);
  }

  /**
   * True when a write to session `id` should carry its TTL: unless this node refreshed it within
   * ttl_refresh_slack of its idle lifespan (`lifespan` s, the one its login chose; else
   * cookie_lifespan), or moments ago (1 % of it, at most 1 s: this request's own load).
   */
  refreshDue(id: string, lifespan: number | undefined): boolean {
    const idleMs = Number(this.#idleMs(lifespan));
    return this.#refreshes.due(id, idleMs, Date.now(), Math.min(1000, idleMs / 100));
  }

  /** The stored bytes of one data key (update() re-checking a value before answering without a write). */
  async readData(id: string, key: string): Promise<Buffer | undefined> {
    const hash = this.key(id);
    return (await this.#pool.run((client) => client.hgetBuffer(hash, FIELD.data + key))) ?? undefined;
  }

  /** Reads a session without touching its TTL (the CLI, WebSocket refreshes). */
  async peek(id: string): Promise<StoredSession | null> {
    const key = this.key(id);
    return parseHash(await this.#pool.run((client) => hgetallRaw(client, key)));
  }

  /**
   * Writes changed fields, deletes removed ones and refreshes the TTL in one atomic FCALL, and
   * tells the nodes with its sockets. Without `create`, nothing is written if the session no longer exists.
   * Exactly once: a re-send of the command after a lost reply is recognised by its operation id.
   * @throws SessionGoneError, SessionTooLargeError, SessionStoreUnavailableError
   */
  async write(id: string, request: WriteRequest): Promise<WriteOutcome> {
    // The function derives the notice channel and text from the key: prefix + id of ID_LENGTH.
    if (id.length !== ID_LENGTH) throw new Error(`not a session id: ${id.length} characters`);
    const write = this.#writeArgs(request);
    const reply = (await this.#fcall(FUNCTION.write, this.key(id), write.args, true, fcallWrite)) as WriteReply;
    return this.#written(id, id, request, write, reply, FUNCTION.write);
  }

  /** The arguments of the write function for `request`, and its operation id. */
  #writeArgs(request: WriteRequest, deadlineMs?: number): PreparedWrite {
    const { changes, create, compare } = request;
    const args: (string | Buffer)[] = [''];
    if (compare) args.push(FIELD.data + compare.key, compare.expected ? sha1(compare.expected) : '');
    for (const [key, bytes] of changes.sets) args.push(FIELD.data + key, bytes);
    if (create) args.push(FIELD.created, String(create.createdAt), FIELD.anon, create.anonTag);
    if (request.fields) for (const [field, value] of request.fields) args.push(field, value);
    const firstDelete = args.length;
    for (const key of changes.deletes) args.push(FIELD.data + key);
    if (request.deleteFields) for (const field of request.deleteFields) args.push(field);
    const full = this.#idleMs(request.sessionLifespan);
    const lifespanMs = this.ttlMs(request.createdAt ?? create?.createdAt, request.sessionLifespan);
    const ttlMs = request.lifespanMs !== undefined && request.lifespanMs < Number(lifespanMs) ? String(Math.max(1, request.lifespanMs)) : lifespanMs;
    const opId = this.#ops.next();
    const sendsTtl = create !== undefined || request.refreshTtl !== false || ttlMs !== full;
    args[0] = writeHeader({
      maxBytes: this.#maxBytes,
      ttlMs: sendsTtl ? ttlMs : undefined,
      create: create !== undefined,
      clear: changes.cleared,
      compare: compare !== undefined,
      deletes: args.length - firstDelete,
      deadlineMs,
      opId,
    });
    return { args, firstDelete, opId, fullTtlMs: sendsTtl && ttlMs === full ? Number(full) : undefined };
  }

  /** What a write (or rename) reply means; this node's copy of session `id`, now `to`, follows. */
  #written(id: string, to: string, request: WriteRequest, write: PreparedWrite, reply: WriteReply, name: string): WriteOutcome {
    switch (reply[0]) {
      case WRITE_OK: {
        const { args, firstDelete, opId } = write;
        if (write.fullTtlMs !== undefined) this.#refreshes.refreshed(to, write.fullTtlMs);
        if (request.sessionLifespan !== undefined) this.#learnLifespan(to, request.sessionLifespan);
        const previous = Buffer.isBuffer(reply[1]) ? reply[1].toString() : undefined;
        this.#cache.written(id, previous, opId, (copy) => applyWrite(copy, args, firstDelete, request.changes.cleared, request.compare ? 3 : 1));
        return { ok: true };
      }
      case WRITE_REPEATED:
        // Applied by the first send, whose reply was lost: this node's copy missed the change.
        this.#cache.drop(to);
        if (write.fullTtlMs !== undefined) this.#refreshes.refreshed(to, write.fullTtlMs);
        return { ok: true };
      case WRITE_CONFLICT:
        return { ok: false, current: Buffer.isBuffer(reply[1]) ? reply[1] : undefined };
      case WRITE_GONE:
        this.#refreshes.forget(to);
        throw new SessionGoneError();
      case WRITE_TOO_LARGE:
        throw new SessionTooLargeError(Number(reply[1]), Number(this.#maxBytes));
      case WRITE_UNKNOWN:
        // ioredis sent it again after a lost reply, and Redis cannot tell whether the first send
        // was applied: this node's copy cannot tell either.
        this.#cache.drop(to);
        throw new SessionStoreUnavailableError(`Redis (pool '${this.#pool.name}') lost the reply of a write, and the write sent again could not be told apart from a new one; it was not applied again`);
      case WRITE_EXPIRED:
        throw new SessionStoreUnavailableError(`Redis (pool '${this.#pool.name}') ran the login after command_timeout_ms (${this.#pool.config.command_timeout_ms} ms) had passed; nothing was written`);
      default:
        throw new Error(`unexpected reply from ${name}: ${String(reply[0])}`);
    }
  }

  /**
   * A new id session `id` can be renamed to in one atomic step. On a Redis Cluster both keys of
   * RENAME must share a hash slot, so the new id is picked to land in the old key's slot.
   */
  successorId(id: string): string {
    return this.#pool.config.cluster ? newSessionIdInSlot(this.#prefix, keySlot(this.key(id))) : newSessionId();
  }

  /**
   * Login's commit point: writes `request` (the pending changes and the user binding) to session
   * `id`, moves it to `to` (from successorId) and tells the nodes with its sockets, all in one atomic FCALL, exactly
   * once. False, with nothing written, if `id` no longer exists.
   * @throws SessionTooLargeError, SessionStoreUnavailableError (then nothing or everything happened)
   */
  async rename(id: string, to: string, request: Omit<WriteRequest, 'create' | 'compare'>): Promise<boolean> {
    // A login that reaches Redis after this request gave up on it (503) must not happen: the
    // browser keeps the old cookie, and the session would move away from it.
    const write = this.#writeArgs({ ...request, refreshTtl: true }, Date.now() + this.#pool.config.command_timeout_ms);
    this.#cache.drop(id);
    this.#refreshes.forget(id);
    let reply: WriteReply;
    try {
      reply = (await this.#fcall(FUNCTION.rename, [this.key(id), this.key(to)], write.args, true, fcallWrite)) as WriteReply;
    } catch (error) {
      // No answer in time (a lost reply, a reconnect held back): Redis may have run it. Answering
      // 503 then would leave the browser's old cookie naming nothing and the data at an id nobody
      // holds, so ask once more; the deadline keeps a rename that did not run from running later.
      if (!(error instanceof SessionStoreUnavailableError) || wasNeverSent(error) || !(await this.#renamedAfterAll(to, write.opId))) throw error;
      reply = [WRITE_REPEATED, undefined];
    }
    try {
      this.#written(id, to, request, write, reply, FUNCTION.rename);
    } catch (error) {
      if (error instanceof SessionGoneError) return false;
      throw error;
    }
    return true;
  }

  /**
   * True when the rename `opId` of a login that got no answer ran after all: the new key holds its
   * id in m:v. One read within the pool's timeouts; a failed read or no id is false (503: the rename
   * did not run, or cannot be told, and its deadline keeps it from running later). Not asked with
   * wait_replicas: a master holding the rename does not mean its replicas do.
   */
  async #renamedAfterAll(to: string, opId: string): Promise<boolean> {
    if (this.#pool.config.wait_replicas > 0) return false;
    try {
      const ops = await this.#pool.run((client) => client.hget(this.key(to), FIELD.version));
      return ops !== null && ops.split(';').includes(opId);
    } catch {
      return false;
    }
  }

  /**
   * Deletes session `id` and tells the nodes with its sockets (logout). True if it existed, false
   * if not, null when it cannot tell (its first send's reply was lost, and the one sent again found
   * nothing: deleted by the first, or not there at all).
   */
  async destroy(id: string): Promise<boolean | null> {
    this.#refreshes.forget(id);
    this.#cache.drop(id);
    this.#lifespans.delete(id);
    const notice = encodeNotice({ kind: 'destroyed', id });
    const { reply, resent } = (await this.#fcall(FUNCTION.destroy, this.key(id), [notice], true, fcallNotingResend)) as { reply: unknown; resent: boolean };
    if (reply === 1) return true;
    // Sent again after a lost reply, it finds nothing to delete: the first send may have deleted it.
    return resent ? null : false;
  }

  /**
   * Runs a keepsake function; a Redis that lost the library (restart, new master) gets it again,
   * once. A `write` (data, login, logout) waits for the pool's wait_replicas, if any. `send`, if
   * given, sends the FCALL (fcallWrite: the write header is marked when ioredis sends it again).
   */
  async #fcall(name: string, keys: string | string[], args: (string | Buffer)[], write = false, send?: FcallSender): Promise<unknown> {
    const call = send
      ? (client: RedisClient) => send(client, name, typeof keys === 'string' ? [keys] : keys, args)
      : typeof keys === 'string'
        ? (client: RedisClient) => (client as unknown as { fcallBuffer: FcallBuffer }).fcallBuffer(name, 1, keys, ...args)
        : (client: RedisClient) => (client as unknown as { fcallBuffer: FcallBuffer }).fcallBuffer(name, keys.length, ...keys, ...args);
    const run = (issue: typeof call) => (write ? this.#pool.runReplicated(issue) : this.#pool.run(issue));
    try {
      return await run(call);
    } catch (error) {
      if (!/function not found/i.test(String((error as Error)?.message))) throw error;
      await this.#pool.loadFunctions();
      return run(call);
    }
  }
}

const VERSION_FIELD = Buffer.from(FIELD.version);

/** A session from HGETALL's `[field, value, …]`; null without the created-at field (not a keepsake session). */
function parseHash(hash: Buffer[]): StoredSession | null {
  const data = new Map<string, Buffer>();
  const flash = new Map<string, Buffer>();
  let created: Buffer | null = null;
  let anon: Buffer | null = null;
  let user: Buffer | null = null;
  let cookieSent: Buffer | null = null;
  let lastSeen: Buffer | null = null;
  let lifespan: Buffer | null = null;
  for (let i = 0; i < hash.length; i += 2) {
    const field = hash[i]!.toString();
    const value = hash[i + 1]!;
    if (field.startsWith(FIELD.data)) data.set(field.slice(FIELD.data.length), value);
    else if (field.startsWith(FIELD.flash)) flash.set(field.slice(FIELD.flash.length), value);
    else if (field === FIELD.created) created = value;
    else if (field === FIELD.anon) anon = value;
    else if (field === FIELD.user) user = value;
    else if (field === COOKIE_SENT_FIELD) cookieSent = value;
    else if (field === DEVICE_FIELD.lastSeen) lastSeen = value;
    else if (field === FIELD.lifespan) lifespan = value;
  }
  if (created === null) return null; // no metadata: not a session keepsake created
  const stored: StoredSession = { data, flash, meta: { ...meta(created, anon, user, lifespan), cookieSentAt: Number((cookieSent ?? created).toString()) } };
  if (lastSeen !== null) stored.meta.lastSeenAt = Number(lastSeen.toString());
  return stored;
}

function dataBytes(stored: StoredSession): number {
  let bytes = 0;
  for (const value of stored.data.values()) bytes += value.length;
  for (const value of stored.flash.values()) bytes += value.length;
  return bytes;
}

/** The version (newest operation id in `m:v`, `c;b;a;`) of an HGETALL reply, if it has one. */
function versionOf(hash: Buffer[]): string | undefined {
  for (let i = 0; i < hash.length; i += 2) {
    if (!hash[i]!.equals(VERSION_FIELD)) continue;
    const ops = hash[i + 1]!;
    return ops.toString('latin1', 0, ops.indexOf(';')) || undefined;
  }
  return undefined;
}

function meta(created: Buffer, anon: Buffer | null, user: Buffer | null, lifespan: Buffer | null = null): SessionMeta {
  const result: SessionMeta = { createdAt: Number(created.toString()), anonTag: anon?.toString() ?? '', userId: user?.toString() ?? null };
  if (lifespan !== null) result.lifespan = Number(lifespan.toString());
  return result;
}

/** Applies a write's arguments (field/value pairs from `first`, then fields to delete) to a cached copy. */
function applyWrite(copy: CachedSession, args: readonly (string | Buffer)[], firstDelete: number, cleared: boolean, first: number): void {
  if (cleared) {
    copy.data.clear();
    copy.flash.clear();
  }
  for (let i = first; i < args.length; i += i < firstDelete ? 2 : 1) {
    const field = args[i] as string;
    const target = field.startsWith(FIELD.data) ? copy.data : field.startsWith(FIELD.flash) ? copy.flash : undefined;
    if (target === undefined) continue;
    if (i < firstDelete) target.set(field.slice(2), Buffer.from(args[i + 1] as Buffer)); // a copy: encoders reuse their buffers
    else target.delete(field.slice(2));
  }
}

function sha1(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('hex');
}

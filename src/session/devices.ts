/**
 * @module A user's devices: their sessions with the device metadata each recorded at login, and
 * whether each has open WebSockets on any app node (presence).
 *
 * Listing costs two round trips whatever the number of sessions: first the user index, the
 * user's presence hash and the live nodes (three single-key reads in one socket write), then one
 * HMGET per session, all in one socket write. Every command touches one key (Redis Cluster safe).
 *
 * Presence keys (written by each node's Presence, src/websocket/presence.ts):
 * - `{key_prefix}presence:<userId>`: a hash, field `<sessionId>|<node>` → that node's open sockets
 *   of that session; refreshed by the node's heartbeat;
 * - `{key_prefix}nodes`: a sorted set, node → the time its heartbeat runs out. A node that died
 *   without closing its sockets stops renewing it: its fields count for nothing once it ran out;
 * - `{key_prefix}node:<node>`: a set of the users a node holds sockets of, so that the first live
 *   node to see it dead can tell those users' sockets.
 */
import type { KeepsakeConfig } from '../config/schema.js';
import type { RedisPool } from '../redis/redis-pool.js';
import { encodeUserNotice, usersChannel } from '../websocket/session-notices.js';
import { browserAndOs, DEVICE_FIELD } from './device-info.js';
import { FIELD } from '../redis/redis-functions.js';
import type { SessionStore } from './session-store.js';
import type { UserIndex } from './user-index.js';

/** One session of a user, as `GET /api/devices` shows it. */
export interface Device {
  /** Opaque, stable while the session lives; reveals nothing of any session id. */
  readonly handle: string;
  /** The session of the request (or socket) asking. */
  readonly current: boolean;
  /** When the session was created (ISO-8601). */
  readonly createdAt: string;
  /** When it was last used (ISO-8601), to the minute. */
  readonly lastSeenAt: string;
  /** The User-Agent it logged in with (at most 256 characters). */
  readonly userAgent: string | null;
  readonly browser: string | null;
  readonly os: string | null;
  /** The client IP it logged in from. */
  readonly ip: string | null;
  /** True while it has an open WebSocket on any app node. */
  readonly online: boolean;
  /** Its open WebSockets on every app node. */
  readonly sockets: number;
}

/** A device with the session id it belongs to (for operators and the CLI; never shown to a user). */
export interface DeviceRecord extends Omit<Device, 'current'> {
  readonly id: string;
}

/** How long a node's heartbeat holds (it renews every third of this): sockets of a dead node show offline after it. */
export const NODE_TTL_MS = 15_000;

/** The field of a session's socket count on a node in the presence hash. */
export function presenceField(sessionId: string, node: string): string {
  return `${sessionId}|${node}`;
}

const HMGET_FIELDS = [FIELD.created, FIELD.user, DEVICE_FIELD.handle, DEVICE_FIELD.userAgent, DEVICE_FIELD.ip, DEVICE_FIELD.lastSeen];

const ignore = () => undefined;

export class Devices {
  readonly #pool: RedisPool;
  readonly #store: SessionStore;
  readonly #users: UserIndex;
  readonly #prefix: string;
  readonly #usersChannel: string;

  constructor({ config, sessionStore, userIndex }: { config: KeepsakeConfig; sessionStore: SessionStore; userIndex: UserIndex }) {
    this.#store = sessionStore;
    this.#pool = sessionStore.pool;
    this.#users = userIndex;
    this.#prefix = config.session.key_prefix;
    this.#usersChannel = usersChannel(config.session.key_prefix);
  }

  get pool(): RedisPool {
    return this.#pool;
  }

  /** The Redis key of `userId`'s presence hash. */
  presenceKey(userId: string): string {
    return `${this.#prefix}presence:${userId}`;
  }

  /** The Redis key of the users `node` holds sockets of. */
  nodeUsersKey(node: string): string {
    return `${this.#prefix}node:${node}`;
  }

  /** The Redis key of the live app nodes (node → heartbeat deadline). */
  get nodesKey(): string {
    return `${this.#prefix}nodes`;
  }

  /** Every live session of `userId` with its device metadata and presence: two round trips. */
  async records(userId: string): Promise<DeviceRecord[]> {
    const indexKey = this.#users.key(userId);
    const presenceKey = this.presenceKey(userId);
    const now = Date.now();
    const [ids, presence, nodes] = await this.#pool.run((client) => {
      // One tick: one socket write, one round trip.
      const pruned = client.zremrangebyscore(indexKey, '-inf', `(${now}`);
      const ids = client.zrange(indexKey, 0, '-1');
      const presence = client.hgetall(presenceKey);
      const nodes = client.zrangebyscore(this.nodesKey, now, '+inf');
      return Promise.all([pruned, ids, presence, nodes]).then(([, ...replies]) => replies);
    });
    if (ids.length === 0) return [];
    const sockets = countSockets(presence, new Set(nodes));
    const rows = await this.#pool.run((client) => Promise.all(ids.map((id) => client.hmget(this.#store.key(id), ...HMGET_FIELDS))));
    const records: DeviceRecord[] = [];
    const dead: string[] = [];
    ids.forEach((id, index) => {
      const [created, user, handle, userAgent, ip, lastSeen] = rows[index]!;
      // Ended (logout, expiry): pruned from the index below.
      if (created == null) return void dead.push(id);
      // Not (yet) this user's: a login between its index entry and its write, or a user change.
      if (user !== userId || handle == null) return;
      const count = sockets.get(id) ?? 0;
      const createdAt = Number(created);
      records.push({
        id,
        handle,
        createdAt: new Date(createdAt).toISOString(),
        lastSeenAt: new Date(lastSeen == null ? createdAt : Number(lastSeen)).toISOString(),
        userAgent: userAgent ?? null,
        ...browserAndOs(userAgent ?? null),
        ip: ip ?? null,
        online: count > 0,
        sockets: count,
      });
    });
    // A missing session may be a login in flight: the index prunes it only once that is ruled out.
    if (dead.length > 0) void this.#users.prune(userId, dead).catch(ignore);
    const stale = staleFields(presence, new Set(nodes), new Set(dead));
    if (stale.length > 0) void this.#pool.run((client) => client.hdel(presenceKey, ...stale)).catch(ignore);
    // Newest lastSeenAt first (ISO strings of one format sort as times).
    return records.sort((a, b) => (a.lastSeenAt < b.lastSeenAt ? 1 : a.lastSeenAt > b.lastSeenAt ? -1 : 0));
  }

  /** Tells every node that `userId`'s devices changed: each pushes a `devices` message to the user's sockets. */
  async announce(userId: string): Promise<void> {
    // node '' : every node acts on it, this one too (through its subscriber).
    const notice = encodeUserNotice({ kind: 'devices', node: '', user: userId });
    await this.#pool.run((client) => client.publish(this.#usersChannel, notice));
  }

  /** As `announce`, without waiting; a failure only costs a push (the next change pushes again). */
  announceLater(userId: string): void {
    void this.announce(userId).catch(ignore);
  }
}

/** What a user sees of a record: no id, `current` for the asking session. */
export function deviceView(record: DeviceRecord, currentId: string | undefined): Device {
  return {
    handle: record.handle,
    current: record.id === currentId,
    createdAt: record.createdAt,
    lastSeenAt: record.lastSeenAt,
    userAgent: record.userAgent,
    browser: record.browser,
    os: record.os,
    ip: record.ip,
    online: record.online,
    sockets: record.sockets,
  };
}

/** Open sockets per session id, counting only nodes whose heartbeat holds. */
function countSockets(presence: Record<string, string>, liveNodes: ReadonlySet<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [field, value] of Object.entries(presence)) {
    const at = field.lastIndexOf('|');
    if (!liveNodes.has(field.slice(at + 1))) continue;
    const id = field.slice(0, at);
    counts.set(id, (counts.get(id) ?? 0) + Number(value));
  }
  return counts;
}

/** Presence fields of dead nodes or ended sessions: removed by the listing that finds them. */
function staleFields(presence: Record<string, string>, liveNodes: ReadonlySet<string>, endedIds: ReadonlySet<string>): string[] {
  return Object.keys(presence).filter((field) => {
    const at = field.lastIndexOf('|');
    return !liveNodes.has(field.slice(at + 1)) || endedIds.has(field.slice(0, at));
  });
}

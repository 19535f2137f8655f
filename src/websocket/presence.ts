/**
 * @module Presence: this node's open sockets of each logged-in session, kept in Redis so every
 * node answers the same, and the `devices` push to a user's sockets.
 *
 * Costs nothing per message. When a user's sockets on this node change (open, close, login,
 * destroy), one flush per event-loop turn writes that user's counts (HSET/HDEL + PEXPIRE of
 * `{key_prefix}presence:<user>`, one round trip). A heartbeat every NODE_TTL_MS / 3 renews this
 * node in `{key_prefix}nodes` and re-writes its counts; a node killed without closing its sockets
 * stops renewing, and listings ignore its counts once NODE_TTL_MS passed; the first live node's
 * heartbeat to see it dead tells the users it held sockets of (docs/devices.md).
 * When a session goes online or offline, the user's devices are announced to every node, and each
 * node pushes `{"type":"devices", devices}` to that user's sockets (one listing per node).
 */
import { debuglog } from 'node:util';
import type { KeepsakeConfig } from '../config/schema.js';
import { deviceView, Devices, NODE_TTL_MS, presenceField } from '../session/devices.js';
import type { ConnectionRegistry } from './connection-registry.js';

const trace = debuglog('keepsake');

/** Presence hashes outlive a missed heartbeat or two; a live node renews them every beat. */
const PRESENCE_TTL_MS = NODE_TTL_MS * 4;

export class Presence {
  readonly #registry: ConnectionRegistry;
  readonly #devices: Devices;
  /** What this node last wrote per user: session id → sockets. */
  readonly #written = new Map<string, Map<string, number>>();
  /** Users whose sockets changed since the last flush. */
  readonly #dirty = new Set<string>();
  #flushing: Promise<void> | null = null;
  /** Per user: the number of the latest listing started, and of the latest sent (pushes in flight only). */
  readonly #pushes = new Map<string, { started: number; sent: number }>();
  #heartbeat: NodeJS.Timeout | null = null;
  #closed = false;

  constructor({ connectionRegistry, devices }: { config: KeepsakeConfig; connectionRegistry: ConnectionRegistry; devices: Devices }) {
    this.#registry = connectionRegistry;
    this.#devices = devices;
    connectionRegistry.onSocketsChanged = (user) => this.#changed(user);
    connectionRegistry.onDevicesChanged = (user) => this.#push(user);
  }

  /** This node's id in the presence keys. */
  get node(): string {
    return this.#registry.node;
  }

  /** Stops the heartbeat and withdraws this node (app shutdown; its sockets are closed by then). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    await this.#flushing;
    if (this.#written.size === 0) return;
    const writes = [...this.#written];
    this.#written.clear();
    await this.#devices.pool
      .run((client) =>
        Promise.all([
          client.zrem(this.#devices.nodesKey, this.node),
          client.del(this.#devices.nodeUsersKey(this.node)),
          ...writes.map(([user, counts]) => client.hdel(this.#devices.presenceKey(user), ...[...counts.keys()].map((id) => presenceField(id, this.node)))),
        ]),
      )
      .catch(() => undefined);
  }

  #changed(user: string): void {
    if (this.#closed) return;
    this.#dirty.add(user);
    if (this.#flushing === null) this.#flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
  }

  /** Writes the counts of every changed user in one round trip; announces sessions that went online or offline. */
  async #flush(): Promise<void> {
    try {
      while (this.#dirty.size > 0) {
        const users = [...this.#dirty];
        this.#dirty.clear();
        const announce: string[] = [];
        const writes: { user: string; set: string[]; del: string[] }[] = [];
        for (const user of users) {
          const before = this.#written.get(user) ?? new Map<string, number>();
          const after = this.#registry.sessionCounts(user);
          const set: string[] = [];
          const del: string[] = [];
          for (const [id, count] of after) if (before.get(id) !== count) set.push(presenceField(id, this.node), String(count));
          for (const id of before.keys()) if (!after.has(id)) del.push(presenceField(id, this.node));
          if (set.length === 0 && del.length === 0) continue;
          if (after.size > 0) this.#written.set(user, after);
          else this.#written.delete(user);
          writes.push({ user, set, del });
          // Online/offline flips (a session's first socket here or its last): the user's views change.
          if ([...after.keys()].some((id) => !before.has(id)) || [...before.keys()].some((id) => !after.has(id))) announce.push(user);
        }
        if (writes.length === 0) continue;
        this.#startHeartbeat();
        const holding = writes.filter((write) => write.set.length > 0).map((write) => write.user);
        const nodeUsers = this.#devices.nodeUsersKey(this.node);
        try {
          await this.#devices.pool.run((client) =>
            Promise.all([
              client.zadd(this.#devices.nodesKey, Date.now() + NODE_TTL_MS, this.node),
              client.pexpire(this.#devices.nodesKey, PRESENCE_TTL_MS),
              holding.length > 0 ? client.sadd(nodeUsers, ...holding) : undefined,
              client.pexpire(nodeUsers, PRESENCE_TTL_MS),
              ...writes.flatMap(({ user, set, del }) => {
                const key = this.#devices.presenceKey(user);
                return [
                  set.length > 0 ? client.hset(key, ...set) : undefined,
                  del.length > 0 ? client.hdel(key, ...del) : undefined,
                  client.pexpire(key, PRESENCE_TTL_MS),
                ];
              }),
            ]),
          );
        } catch (error) {
          // The next heartbeat writes every count of this node again.
          trace('presence: could not write counts: %s', (error as Error).message);
        }
        for (const user of announce) this.#devices.announceLater(user);
      }
    } finally {
      this.#flushing = null;
    }
  }

  #startHeartbeat(): void {
    if (this.#heartbeat !== null || this.#closed) return;
    this.#heartbeat = setInterval(() => void this.#beat(), NODE_TTL_MS / 3);
    this.#heartbeat.unref();
  }

  /**
   * Renews this node and re-writes all its counts (a listing may have pruned them while this node
   * was slow); finds nodes whose heartbeat ran out and tells the users they held sockets of.
   */
  async #beat(): Promise<void> {
    if (this.#written.size === 0) {
      if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
      this.#heartbeat = null;
      return;
    }
    const writes = [...this.#written];
    const nodeUsers = this.#devices.nodeUsersKey(this.node);
    const now = Date.now();
    try {
      const dead = await this.#devices.pool.run((client) => {
        const replies = Promise.all([
          client.zrangebyscore(this.#devices.nodesKey, '-inf', `(${now}`),
          client.zadd(this.#devices.nodesKey, now + NODE_TTL_MS, this.node),
          client.pexpire(this.#devices.nodesKey, PRESENCE_TTL_MS),
          client.sadd(nodeUsers, ...writes.map(([user]) => user)),
          client.pexpire(nodeUsers, PRESENCE_TTL_MS),
          ...writes.flatMap(([user, counts]) => {
            const key = this.#devices.presenceKey(user);
            return [client.hset(key, ...[...counts].flatMap(([id, count]) => [presenceField(id, this.node), String(count)])), client.pexpire(key, PRESENCE_TTL_MS)];
          }),
        ]);
        return replies.then((all) => all[0] as string[]);
      });
      for (const node of dead) if (node !== this.node) await this.#buryNode(node);
    } catch (error) {
      trace('presence: heartbeat failed: %s', (error as Error).message);
    }
  }

  /** A node's heartbeat ran out (it died without closing its sockets): whoever removes it tells its users. */
  async #buryNode(node: string): Promise<void> {
    const key = this.#devices.nodeUsersKey(node);
    const [removed, users] = await this.#devices.pool.run((client) => Promise.all([client.zrem(this.#devices.nodesKey, node), client.smembers(key)]));
    if (removed !== 1) return; // another node got there first
    trace('presence: node %s stopped its heartbeat; telling %d user(s)', node, users.length);
    for (const user of users) this.#devices.announceLater(user);
    await this.#devices.pool.run((client) => client.del(key));
  }

  /**
   * Pushes `user`'s devices to their sockets on this node (one listing); returns how many got it.
   * Listings of one user are sent in the order they were asked for: one that Redis answered late
   * is dropped when a newer one was already sent, so a socket never ends on an older listing.
   */
  #push(user: string): number {
    const connections = this.#registry.ofUser(user).filter((connection) => connection.session.authenticated);
    if (connections.length === 0) return 0;
    const order = this.#pushes.get(user) ?? { started: 0, sent: 0 };
    this.#pushes.set(user, order);
    const number = ++order.started;
    const settle = () => {
      if (order.started === number) this.#pushes.delete(user);
    };
    void this.#devices.records(user).then(
      (records) => {
        settle();
        if (number < order.sent) return;
        order.sent = number;
        for (const connection of connections) {
          const current = this.#registry.sessionIdOf(connection);
          connection.send({ type: 'devices', devices: records.map((record) => deviceView(record, current)) });
        }
      },
      (error: unknown) => {
        settle();
        trace('presence: could not list devices of a user: %s', (error as Error).message);
      },
    );
    return connections.length;
  }
}

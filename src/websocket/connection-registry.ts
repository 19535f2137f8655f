/**
 * @module The open WebSockets of this node, by session id and by user, and the way to reach
 * every socket of a user on every node (a user notice published under key_prefix).
 */
import { randomBytes } from 'node:crypto';
import type { KeepsakeConfig } from '../config/schema.js';
import type { SocketMetrics } from '../http/metrics.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import type { SessionStore } from '../session/session-store.js';
import { checkClose, type Connection } from './connection.js';
import type { ReadOnlySessionHandle } from './read-only-session.js';
import { encodeUserNotice, usersChannel, type UserNotice } from './session-notices.js';

/** @internal The sockets of one session on this node, and the state of keeping their view current. */
export class SessionSockets {
  id: string;
  user: string;
  readonly connections = new Set<Connection>();
  /** The views these sockets hold (one; more only after a login moved a session onto another's id). */
  readonly handles: ReadOnlySessionHandle[];
  /** False once every socket closed or the session was destroyed. */
  live = true;
  /** A re-read is running. */
  refreshing = false;
  /** Another notice came while it ran: read again. */
  stale = false;
  /** A notice asked for the hook to fire even if the data looks the same (a login). */
  push = false;

  constructor(id: string, user: string, handle: ReadOnlySessionHandle) {
    this.id = id;
    this.user = user;
    this.handles = [handle];
  }
}

/**
 * The container's `connectionRegistry` singleton: this node's open sockets, and the way to reach
 * every socket of a user on every node.
 * @example
 * const registry = container.cradle.connectionRegistry;
 * await registry.sendToUser('alice', { type: 'notice', text: 'Maintenance in 5 minutes' });
 * await registry.closeUser('alice'); // 4401 on every node
 */
export class ConnectionRegistry {
  /** This node's id in user notices, so a node does not deliver its own notice twice. */
  readonly node = randomBytes(6).toString('hex');
  readonly #store: SessionStore;
  readonly #logger: KeepsakeLogger;
  readonly #channel: string;
  /** Every open connection and its session's entry (null: no session). */
  readonly #connections = new Map<Connection, SessionSockets | null>();
  readonly #bySession = new Map<string, SessionSockets>();
  readonly #byUser = new Map<string, Set<Connection>>();
  /** @internal Told when a user's sockets on this node changed (presence keeps count). */
  onSocketsChanged: ((user: string) => void) | null = null;
  /** @internal Told when a user's devices changed on any node (presence pushes the list). */
  onDevicesChanged: ((user: string) => number) | null = null;

  constructor({ config, sessionStore, metrics, logger }: { config: KeepsakeConfig; sessionStore: SessionStore; metrics?: SocketMetrics; logger?: KeepsakeLogger }) {
    this.#store = sessionStore;
    this.#logger = logger ?? consoleLogger;
    this.#channel = usersChannel(config.session.key_prefix);
    metrics?.trackOpenSockets(() => this.size);
  }

  /** Open sockets on this node (for the metrics). */
  get size(): number {
    return this.#connections.size;
  }

  /** The open sockets of session `id` on this node. */
  ofSession(id: string): Connection[] {
    return [...(this.#bySession.get(id)?.connections ?? [])];
  }

  /** The open sockets of `user` on this node. */
  ofUser(user: string): Connection[] {
    return [...(this.#byUser.get(user) ?? [])];
  }

  /** Every open socket on this node. */
  all(): Connection[] {
    return [...this.#connections.keys()];
  }

  /**
   * Sends `value` (a string as is, anything else as JSON) to every socket of `user` on every node.
   * @returns how many sockets of this node got it.
   * @throws SessionStoreUnavailableError when the notice could not be published to the other nodes.
   */
  async sendToUser(user: string, value: unknown): Promise<number> {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return this.#broadcast({ kind: 'send', node: this.node, user, text });
  }

  /**
   * Closes every socket of `user` on every node (default 4401, as a destroyed session does).
   * @returns how many sockets of this node were closed.
   * @throws WebSocketCloseError for a code or reason a close frame cannot carry; no node is told.
   */
  async closeUser(user: string, code = 4401, reason = 'closed for this user'): Promise<number> {
    checkClose(code, reason);
    return this.#broadcast({ kind: 'close', node: this.node, user, code, reason });
  }

  /**
   * @internal Applies a user notice to this node's sockets; returns how many it reached. Never
   * throws: it runs for notices from other nodes (or anyone who can PUBLISH), so a notice one
   * socket cannot take is logged and the others still get it.
   */
  deliver(notice: UserNotice): number {
    if (notice.kind === 'devices') return this.onDevicesChanged?.(notice.user) ?? 0;
    const connections = this.ofUser(notice.user);
    let reached = 0;
    for (const connection of connections) {
      try {
        if (notice.kind === 'send') connection.send(notice.text);
        else connection.close(notice.code, notice.reason);
        reached++;
      } catch (error) {
        this.#logger.warn({ user: notice.user, kind: notice.kind, err: error }, 'user notice could not be applied to a socket; ignored');
      }
    }
    return reached;
  }

  /** @internal */
  entry(id: string): SessionSockets | undefined {
    return this.#bySession.get(id);
  }

  /** @internal */
  entries(): SessionSockets[] {
    return [...this.#bySession.values()];
  }

  /** @internal The entry of session `id`, made with `handle` if the session has no socket here yet. */
  attach(id: string, user: string, handle: () => ReadOnlySessionHandle): SessionSockets {
    let entry = this.#bySession.get(id);
    if (entry === undefined) {
      entry = new SessionSockets(id, user, handle());
      this.#bySession.set(id, entry);
    }
    return entry;
  }

  /** @internal */
  add(connection: Connection, entry: SessionSockets | null): void {
    this.#connections.set(connection, entry);
    entry?.connections.add(connection);
    this.#index(entry?.user ?? connection.user, connection);
  }

  /** @internal Forgets a closed connection; false if it was not registered. */
  remove(connection: Connection): boolean {
    const entry = this.#connections.get(connection);
    if (entry === undefined) return false;
    this.#connections.delete(connection);
    this.#unindex(entry?.user ?? connection.user, connection);
    if (entry !== null) {
      entry.connections.delete(connection);
      if (entry.connections.size === 0) this.#forget(entry);
    }
    return true;
  }

  /**
   * @internal Open sockets per logged-in session id of `user` on this node (sockets of a
   * destroyed session, still closing, are not counted).
   */
  sessionCounts(user: string): Map<string, number> {
    const counts = new Map<string, number>();
    for (const connection of this.#byUser.get(user) ?? []) {
      const entry = this.#connections.get(connection);
      if (!entry?.live || !connection.session.authenticated) continue;
      counts.set(entry.id, (counts.get(entry.id) ?? 0) + 1);
    }
    return counts;
  }

  /** @internal The session id of `connection`'s socket, if it has a live one. */
  sessionIdOf(connection: Connection): string | undefined {
    const entry = this.#connections.get(connection);
    return entry?.live ? entry.id : undefined;
  }

  /** @internal The session was destroyed: its sockets leave the session index (they are being closed). */
  drop(entry: SessionSockets): Connection[] {
    this.#forget(entry);
    this.onSocketsChanged?.(entry.user);
    return [...entry.connections];
  }

  /** @internal A login moved the session to `to`; merges with sockets already on `to`. */
  rename(entry: SessionSockets, to: string): SessionSockets {
    if (this.#bySession.get(entry.id) === entry) this.#bySession.delete(entry.id);
    const target = this.#bySession.get(to);
    if (target === undefined || target === entry) {
      entry.id = to;
      this.#bySession.set(to, entry);
      this.onSocketsChanged?.(entry.user);
      return entry;
    }
    entry.live = false;
    for (const connection of entry.connections) {
      this.#unindex(entry.user, connection);
      target.connections.add(connection);
      this.#connections.set(connection, target);
      this.#index(target.user, connection);
    }
    target.handles.push(...entry.handles);
    return target;
  }

  /** @internal The session's user changed (login): re-index its sockets. */
  retag(entry: SessionSockets, user: string): void {
    if (entry.user === user) return;
    for (const connection of entry.connections) this.#unindex(entry.user, connection);
    entry.user = user;
    for (const connection of entry.connections) this.#index(user, connection);
  }

  async #broadcast(notice: UserNotice): Promise<number> {
    const delivered = this.deliver(notice);
    const payload = encodeUserNotice(notice);
    await this.#store.pool.run((client) => client.publish(this.#channel, payload));
    return delivered;
  }

  #forget(entry: SessionSockets): void {
    entry.live = false;
    if (this.#bySession.get(entry.id) === entry) this.#bySession.delete(entry.id);
  }

  #index(user: string, connection: Connection): void {
    let set = this.#byUser.get(user);
    if (set === undefined) this.#byUser.set(user, (set = new Set()));
    set.add(connection);
    this.onSocketsChanged?.(user);
  }

  #unindex(user: string, connection: Connection): void {
    const set = this.#byUser.get(user);
    if (set === undefined) return;
    set.delete(connection);
    if (set.size === 0) this.#byUser.delete(user);
    this.onSocketsChanged?.(user);
  }
}

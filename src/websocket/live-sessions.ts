/**
 * @module Keeps every socket's read-only session current on this node.
 *
 * A handshake subscribes to the cookie's session's own notice channel (the first socket of a
 * session on this node; left when its last socket here closes) and restores the session (never
 * creates one: one Redis round trip). After that, the node's notice subscriber says when a session
 * changed, was renamed by a login or was destroyed, on any node: a session with sockets here is re-read once per notice (bursts
 * coalesce into one read at a time), the new data shown to all its sockets and the controller's
 * `onSessionChange` fired; a login's new id is followed (its
 * channel subscribed before the old one is left, then the session re-read); a destroy closes the sockets with 4401.
 * After the subscriber reconnects, every session with sockets here is re-read. An expiry sends no
 * notice: the expiry sweep (expiry-sweep.ts) finds it and closes the sockets with 4401 too.
 */
import { debuglog } from 'node:util';
import type { WebSocket } from 'ws';
import type { KeepsakeConfig } from '../config/schema.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import type { CookieCodec } from '../session/cookie-codec.js';
import { newAnonymousTag } from '../session/session-id.js';
import type { SessionManager } from '../session/session-manager.js';
import type { SessionNotice } from '../session/session-store.js';
import type { Session } from '../session/session.js';
import type { ValueCodec } from '../session/value-codec.js';
import { CLOSE_GOING_AWAY, CLOSE_SESSION_ENDED, CLOSE_TOO_MANY_SOCKETS, CLOSED, Connection } from './connection.js';
import type { ConnectionRegistry, SessionSockets } from './connection-registry.js';
import { ExpirySweep, sweepPeriodMs } from './expiry-sweep.js';
import { emptyReadOnlySession, readOnlySession } from './read-only-session.js';
import type { Presence } from './presence.js';
import type { NoticeListener, SessionNotices, UserNotice } from './session-notices.js';
import type { WebSocketController } from './websocket-controller.js';

const trace = debuglog('keepsake');

/** Close code when a hook failed and the controller has no onError (RFC 6455 "internal error"). */
const CLOSE_INTERNAL_ERROR = 1011;

/** What the handshake read before the upgrade, handed to `open` once the socket exists. */
export interface Handshake {
  /** The cookie's session, or null (no valid cookie, or a session the store no longer has). */
  readonly session: Session | null;
  /** The subscriber's epoch before the read: if it changed, notices may have been missed. */
  readonly epoch: number;
  /** Stops recording notices for the session; returns those that came during the handshake. */
  release(): SessionNotice[];
}

export interface LiveSessionsDeps {
  config: KeepsakeConfig;
  sessionManager: SessionManager;
  cookieCodec: CookieCodec;
  valueCodec: ValueCodec;
  connectionRegistry: ConnectionRegistry;
  sessionNotices: SessionNotices;
  /** Counts this node's sockets per logged-in session in Redis (devices' "online"). */
  presence?: Presence;
  logger?: KeepsakeLogger;
}

type Hook = 'onOpen' | 'onMessage' | 'onClose' | 'onError' | 'onSessionChange';

/** Notices recorded for a session id while handshakes of it are under way. */
interface PendingNotices {
  count: number;
  notices: SessionNotice[];
  /** More came than are kept: whoever registers re-reads the session instead. */
  overflowed: boolean;
}

/** Notices kept per session during handshakes (they last milliseconds; this only bounds a storm). */
const MAX_PENDING_NOTICES = 64;
/** After a resubscribe, how long a session found gone waits for a notice before it counts as ended. */
const MISSED_NOTICE_WAIT_MS = 250;

export class LiveSessions {
  readonly config: KeepsakeConfig;
  readonly #sessions: SessionManager;
  readonly #cookies: CookieCodec;
  readonly #codec: ValueCodec;
  readonly #registry: ConnectionRegistry;
  readonly #notices: SessionNotices;
  readonly #logger: KeepsakeLogger;
  /** Notices for sessions whose handshake is under way, so none is lost before the socket is registered. */
  readonly #pending = new Map<string, PendingNotices>();
  /** The hooks still running per connection (only while one is async): hooks run one at a time, in order. */
  readonly #running = new WeakMap<Connection, Promise<void>>();
  /** What each session's sockets were last shown, to tell a real change from a re-read. */
  readonly #shown = new WeakMap<SessionSockets, Buffer>();
  /** Closes the sockets of sessions Redis expired (no notice says so). */
  readonly #expiry: ExpirySweep;
  readonly #presence: Presence | null;
  #closing = false;
  /** Entries re-read because the subscriber came back, or only now listens to their channel: notices for them may have been missed. */
  readonly #afterOutage = new WeakSet<SessionSockets>();

  constructor(deps: LiveSessionsDeps) {
    this.config = deps.config;
    this.#sessions = deps.sessionManager;
    this.#cookies = deps.cookieCodec;
    this.#codec = deps.valueCodec;
    this.#registry = deps.connectionRegistry;
    this.#notices = deps.sessionNotices;
    this.#logger = deps.logger ?? consoleLogger;
    this.#notices.listen(this);
    this.#presence = deps.presence ?? null;
    this.#expiry = new ExpirySweep({
      store: this.#sessions.store,
      registry: this.#registry,
      notices: this.#notices,
      periodMs: sweepPeriodMs(this.config.session.cookie_lifespan),
      ended: (entry) => this.#end(entry),
    });
  }

  get registry(): ConnectionRegistry {
    return this.#registry;
  }

  /** True once shutdown began: new sockets are closed with 1001 at once. */
  get closing(): boolean {
    return this.#closing;
  }

  /** @internal
   * Before the upgrade: makes sure this node hears notices (the first socket opens the
   * subscriber), then reads the cookie's session without creating one.
   * @throws SessionStoreUnavailableError when Redis cannot be reached in time (the handshake gets 503).
   */
  async handshake(cookieHeader: string | undefined): Promise<Handshake> {
    await this.#notices.start();
    const id = this.#cookies.read(cookieHeader)?.id;
    if (id === undefined) return { session: null, epoch: this.#notices.epoch, release: () => [] };
    let pending = this.#pending.get(id);
    if (pending === undefined) this.#pending.set(id, (pending = { count: 0, notices: [], overflowed: false }));
    pending.count++;
    const mark = pending.notices.length;
    let released = false;
    const release = (): SessionNotice[] => {
      if (released) return [];
      released = true;
      const notices = pending.notices.slice(mark);
      if (pending.overflowed) notices.push({ kind: 'changed', id });
      if (--pending.count === 0 && this.#pending.get(id) === pending) this.#pending.delete(id);
      this.#settle(id);
      return notices;
    };
    try {
      // Subscribed before the read: a change after it is heard (or recorded in pending).
      await this.#notices.follow(id);
      const epoch = this.#notices.epoch;
      return { session: await this.#sessions.restore(cookieHeader), epoch, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /** @internal After the upgrade: registers the socket, wires its events and calls `onOpen`. */
  open(socket: WebSocket, handshake: Handshake, controller: WebSocketController): Connection {
    const session = handshake.session;
    const { ws_max_buffered_bytes: maxBuffered, ws_max_sockets_per_session: maxSockets } = this.config.server;
    let entry: SessionSockets | null = null;
    let connection: Connection;
    if (session !== null) {
      entry = this.#registry.attach(session.id, session.user, () => readOnlySession(session));
      connection = new Connection(socket, entry.handles[0]!.view, controller, maxBuffered);
      if (entry.connections.size >= maxSockets) {
        // One socket more than a session may have here: refused before the controller sees it,
        // so a script opening sockets in a loop cannot grow the node's memory.
        handshake.release();
        trace('session has %d sockets here (server.ws_max_sockets_per_session): one more refused', entry.connections.size);
        socket.on('error', (error: Error) => trace('refused websocket: %s', error.message)); // an unheard 'error' would throw
        connection.close(CLOSE_TOO_MANY_SOCKETS, 'too many sockets for this session');
        return connection;
      }
      this.#expiry.start();
      // The session read may carry another id than the cookie's (an adopted legacy session).
      this.#follow(entry);
    } else {
      // No session: an empty view, and a user unique to this connection.
      connection = new Connection(socket, emptyReadOnlySession(`anon-${newAnonymousTag()}`).view, controller, maxBuffered);
    }
    this.#registry.add(connection, entry);
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.#hook(connection, 'onMessage', isBinary ? data : data.toString('utf8'));
    });
    socket.on('error', (error: Error) => this.#hook(connection, 'onError', error));
    socket.on('close', (code: number, reason: Buffer) => {
      const id = this.#registry.sessionIdOf(connection);
      this.#registry.remove(connection);
      if (id !== undefined) this.#settle(id);
      this.#hook(connection, 'onClose', code, reason.toString('utf8'));
    });
    this.#hook(connection, 'onOpen');
    if (this.#closing) connection.close(CLOSE_GOING_AWAY, 'server shutting down');
    // What happened to the session between the read and now.
    const missed = handshake.release();
    if (entry !== null) {
      for (const notice of missed) this.#apply(notice);
      if (handshake.epoch !== this.#notices.epoch && entry.live) this.#refresh(entry, false);
    }
    return connection;
  }

  /** @internal A session notice from the subscriber. */
  sessionNotice(notice: SessionNotice): void {
    const pending = this.#pending.get(notice.id);
    if (pending !== undefined) {
      if (pending.notices.length < MAX_PENDING_NOTICES) pending.notices.push(notice);
      else pending.overflowed = true;
    }
    this.#apply(notice);
  }

  #apply(notice: SessionNotice): void {
    const entry = this.#registry.entry(notice.id);
    if (entry === undefined) return;
    switch (notice.kind) {
      case 'changed':
        this.#refresh(entry, false);
        break;
      case 'renamed': {
        // Login: the sockets follow the new id and always hear about it.
        const target = this.#registry.rename(entry, notice.to);
        this.#refresh(target, true);
        // SUBSCRIBE to the new id goes out before UNSUBSCRIBE from the old one.
        this.#follow(target);
        this.#settle(notice.id);
        break;
      }
      case 'destroyed':
        this.#end(entry);
        break;
    }
  }

  /** The session ended (destroyed or expired): its sockets are closed with 4401. */
  #end(entry: SessionSockets): void {
    for (const connection of this.#registry.drop(entry)) connection.close(CLOSE_SESSION_ENDED, 'session ended');
    this.#settle(entry.id);
  }

  /**
   * Subscribes to the entry's session channel if this node is not yet; once subscribed, re-reads
   * the session (a change made between the id's appearance and the SUBSCRIBE was not heard). A
   * session found gone then was renamed or ended before this node listened (a second login right
   * after the first, heard late): no notice will come on this channel, so, as after an outage,
   * a second miss ends its sockets (4401) instead of leaving them on an id nothing reaches.
   */
  #follow(entry: SessionSockets): void {
    if (this.#notices.follows(entry.id)) return;
    const id = entry.id;
    void this.#notices.follow(id).then(() => {
      if (!entry.live || entry.id !== id) return;
      this.#afterOutage.add(entry);
      this.#refresh(entry, false);
    });
  }

  /** Leaves session `id`'s channel once neither a socket nor a handshake of it is left here. */
  #settle(id: string): void {
    if (this.#registry.entry(id)?.live || this.#pending.has(id)) return;
    if (this.#notices.follows(id)) this.#notices.unfollow(id);
  }

  /** @internal A user notice from another node. */
  userNotice(notice: UserNotice): void {
    if (notice.node !== this.#registry.node) this.#registry.deliver(notice);
  }

  /** @internal The subscriber is back: re-read every session with sockets here. */
  resubscribed(): void {
    for (const entry of this.#registry.entries()) {
      this.#afterOutage.add(entry);
      this.#refresh(entry, false);
    }
  }

  /**
   * Graceful shutdown: closes every socket with 1001, waits for them (at most `timeoutMs`, then
   * cuts the rest) and closes the subscriber.
   */
  async shutdown(timeoutMs = this.config.server.shutdown_timeout_ms / 2): Promise<void> {
    this.#closing = true;
    this.#expiry.stop();
    const open = this.#registry.all();
    if (open.length > 0) {
      const closed = Promise.all(
        open.map((connection) =>
          connection.socket.readyState === CLOSED ? undefined : new Promise((resolve) => connection.socket.once('close', resolve)),
        ),
      );
      for (const connection of open) connection.close(CLOSE_GOING_AWAY, 'server shutting down');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      for (const connection of this.#registry.all()) connection.terminate();
    }
    await this.#presence?.close();
    await this.#notices.close();
  }

  /** Re-reads the entry's session, one read at a time; notices during a read cause one more. */
  #refresh(entry: SessionSockets, push: boolean): void {
    if (push) entry.push = true;
    if (entry.refreshing) {
      entry.stale = true;
      return;
    }
    entry.refreshing = true;
    // A rejection here would be unhandled, and Node exits on those: log it instead.
    this.#reread(entry)
      .catch((error: unknown) => this.#logger.error({ session: entry.id.slice(0, 8), err: error }, 'could not show a session change to its sockets'))
      .finally(() => {
        entry.refreshing = false;
      });
  }

  /**
   * A session found gone right after the subscriber came back: its destroy notice (a logout, a
   * revoke) may have been published while the subscriber was away, and no notice will come. Once
   * a notice published since the resubscription has had time to arrive (a rename's moves the
   * entry), a second miss ends it: its sockets close with 4401 within a second of the logout,
   * not a sweep later. (A login made during the outage looks the same: its sockets are closed
   * too, and reconnect with the new cookie.)
   */
  #confirmEnded(entry: SessionSockets, id: string): void {
    const confirm = () => {
      if (!entry.live || entry.id !== id || this.#closing) return;
      this.#sessions.peek(id).then(
        (session) => {
          if (session === null && entry.live && entry.id === id) this.#end(entry);
        },
        (error: unknown) => trace('could not confirm an ended session after a resubscribe: %s', (error as Error).message),
      );
    };
    setTimeout(confirm, MISSED_NOTICE_WAIT_MS).unref();
  }

  async #reread(entry: SessionSockets): Promise<void> {
    do {
      entry.stale = false;
      const id = entry.id;
      let session: Session | null;
      try {
        session = await this.#sessions.peek(id);
      } catch (error) {
        // Redis trouble: the subscriber reconnects too, and then every session is re-read.
        trace('could not re-read session for its sockets: %s', (error as Error).message);
        return;
      }
      if (!entry.live) return;
      if (entry.id !== id) {
        entry.stale = true; // renamed while reading: read the new id
        continue;
      }
      // Gone: a rename or destroy notice is on its way, or it expired (the expiry sweep closes
      // those). Re-read after the subscriber was away, the notice may have been missed instead.
      if (session === null) {
        if (this.#afterOutage.delete(entry)) this.#confirmEnded(entry, id);
        continue;
      }
      this.#afterOutage.delete(entry);
      const before = this.#shown.get(entry) ?? this.#fingerprint(entry.handles[0]!.view);
      const after = this.#fingerprint(session);
      this.#shown.set(entry, after);
      const changed = entry.push || !before.equals(after);
      entry.push = false;
      for (const handle of entry.handles) handle.show(session);
      this.#registry.retag(entry, session.user);
      if (changed) for (const connection of [...entry.connections]) this.#hook(connection, 'onSessionChange');
    } while (entry.stale && entry.live);
  }

  /** Bytes that are equal when two reads of a session show the same thing. */
  #fingerprint(session: { readonly user: string; readonly authenticated: boolean; readonly data: { keys(): string[]; get(key: never): unknown } }): Buffer {
    const keys = session.data.keys().sort();
    const get = session.data.get.bind(session.data) as (key: string) => unknown;
    try {
      return this.#codec.encode('(fingerprint)', [session.user, session.authenticated, keys.map((key) => [key, get(key)])]);
    } catch {
      return Buffer.alloc(0); // cannot happen for decoded values; a push is the safe answer
    }
  }

  /** Calls a controller hook; async hooks of one connection run one after another, in order. */
  #hook(connection: Connection, name: Hook, ...args: unknown[]): void {
    const before = this.#running.get(connection);
    if (before !== undefined) {
      const next = before.then(() => this.#call(connection, name, args));
      this.#track(connection, next);
      return;
    }
    const result = this.#call(connection, name, args);
    if (result !== undefined) this.#track(connection, result);
  }

  #track(connection: Connection, running: Promise<void>): void {
    this.#running.set(connection, running);
    void running.then(() => {
      if (this.#running.get(connection) === running) this.#running.delete(connection);
    });
  }

  /** Runs one hook; returns a promise only when the hook was async. Never throws. */
  #call(connection: Connection, name: Hook, args: unknown[]): Promise<void> | undefined {
    const controller = connection.controller;
    const hook = controller[name] as ((this: WebSocketController, ...args: unknown[]) => unknown) | undefined;
    if (hook === undefined) {
      if (name === 'onError') this.#failed(connection, args[0]);
      return undefined;
    }
    let result: unknown;
    try {
      result = hook.apply(controller, [connection, ...args]);
    } catch (error) {
      this.#error(connection, name, error);
      return undefined;
    }
    if (result instanceof Promise) return result.then(() => undefined, (error: unknown) => this.#error(connection, name, error));
    return undefined;
  }

  /** A hook failed: onError hears it; if onError itself fails, the socket is closed with 1011. */
  #error(connection: Connection, name: Hook, error: unknown): void | Promise<void> {
    if (name === 'onError' || connection.controller.onError === undefined) {
      this.#failed(connection, error);
      return;
    }
    return this.#call(connection, 'onError', [error instanceof Error ? error : new Error(String(error))]);
  }

  #failed(connection: Connection, error: unknown): void {
    trace('websocket connection %d: %s', connection.id, (error as Error)?.stack ?? String(error));
    connection.close(CLOSE_INTERNAL_ERROR, 'internal error');
  }
}

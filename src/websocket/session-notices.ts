/**
 * @module The node's notice subscriber: one dedicated Redis connection in SUBSCRIBE mode, opened
 * when the first WebSocket opens (routes that never open one cost no Redis command at all).
 *
 * Two kinds of channels under key_prefix: each session's own channel (session-channels.ts), where
 * the store's Redis functions publish its notices in the same atomic step as the write (changed,
 * renamed, destroyed), subscribed only while this node holds sockets of the session; and
 * `{key_prefix}users`, where any node publishes user-targeted notices (send to / close every
 * socket of a user; rare, so every node hears them all). ioredis reconnects with keepsake's capped backoff; after every
 * (re)subscription the listener is told, since notices published meanwhile were lost.
 */
import { debuglog } from 'node:util';
import type { KeepsakeConfig } from '../config/schema.js';
import type { SocketMetrics } from '../http/metrics.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import { OutageLog } from '../logging/outage-log.js';
import { traceNotice } from '../tracing/session-channels.js';
import type { RedisClient } from '../redis/redis-client-factory.js';
import { isSessionId } from '../session/session-id.js';
import { decodeNotice, type SessionNotice, type SessionStore } from '../session/session-store.js';
import { SessionChannels } from './session-channels.js';

const trace = debuglog('keepsake');

/** A notice for every socket of one user, on every node. */
export type UserNotice =
  | { readonly kind: 'send'; readonly node: string; readonly user: string; readonly text: string }
  | { readonly kind: 'close'; readonly node: string; readonly user: string; readonly code: number; readonly reason: string }
  /** The user's devices changed (login, end, online, offline): each node pushes the list to their sockets. */
  | { readonly kind: 'devices'; readonly node: string; readonly user: string };

/** The channel of user-targeted notices. */
export function usersChannel(keyPrefix: string): string {
  return `${keyPrefix}users`;
}

// JSON: user names may hold any character; the payload is text already.
export function encodeUserNotice(notice: UserNotice): string {
  if (notice.kind === 'devices') return JSON.stringify({ k: 'd', n: notice.node, u: notice.user });
  return notice.kind === 'send'
    ? JSON.stringify({ k: 's', n: notice.node, u: notice.user, t: notice.text })
    : JSON.stringify({ k: 'c', n: notice.node, u: notice.user, c: notice.code, r: notice.reason });
}

export function decodeUserNotice(text: string): UserNotice | null {
  let raw: { k?: unknown; n?: unknown; u?: unknown; t?: unknown; c?: unknown; r?: unknown };
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (raw === null || typeof raw !== 'object' || typeof raw.n !== 'string' || typeof raw.u !== 'string') return null;
  if (raw.k === 's' && typeof raw.t === 'string') return { kind: 'send', node: raw.n, user: raw.u, text: raw.t };
  if (raw.k === 'd') return { kind: 'devices', node: raw.n, user: raw.u };
  if (raw.k === 'c' && typeof raw.c === 'number') return { kind: 'close', node: raw.n, user: raw.u, code: raw.c, reason: typeof raw.r === 'string' ? raw.r : '' };
  return null;
}

/** Who hears the notices (the node's LiveSessions). */
export interface NoticeListener {
  sessionNotice(notice: SessionNotice): void;
  userNotice(notice: UserNotice): void;
  /** Subscribed again after a reconnect (or late at first): notices may have been missed. */
  resubscribed(): void;
}

export class SessionNotices {
  readonly #store: SessionStore;
  readonly #waitMs: number;
  readonly #sessions: SessionChannels;
  readonly #usersChannel: string;
  #listener: NoticeListener | null = null;
  #client: RedisClient | null = null;
  #subscribed = false;
  #epoch = 0;
  #closed = false;
  readonly #waiters = new Set<() => void>();
  #firstWait: Promise<void> | null = null;
  readonly #metrics: SocketMetrics | undefined;
  readonly #logger: KeepsakeLogger;

  readonly #outage: OutageLog;

  constructor({ config, sessionStore, metrics, logger }: { config: KeepsakeConfig; sessionStore: SessionStore; metrics?: SocketMetrics; logger?: KeepsakeLogger }) {
    this.#store = sessionStore;
    this.#logger = logger ?? consoleLogger;
    this.#outage = new OutageLog(this.#logger, {}, { lost: 'session notice subscriber lost its Redis connection; sockets miss HTTP changes until it resubscribes', back: 'session notice subscriber resubscribed; sockets re-read their sessions' });
    this.#metrics = metrics;
    const pool = sessionStore.pool.config;
    this.#waitMs = pool.connect_timeout_ms + pool.command_timeout_ms;
    this.#sessions = new SessionChannels(config.session.key_prefix);
    this.#usersChannel = usersChannel(config.session.key_prefix);
  }

  /** The one listener of this node. */
  listen(listener: NoticeListener): void {
    this.#listener = listener;
  }

  /** True while the subscription is in place. */
  get subscribed(): boolean {
    return this.#subscribed;
  }

  /** Counts subscriptions: a read made under one epoch may have missed notices if it changed since. */
  get epoch(): number {
    return this.#epoch;
  }

  /** True once the subscriber connection has been opened (the first socket opened). */
  get started(): boolean {
    return this.#client !== null;
  }

  /**
   * Opens the subscriber on first use. The first call's wait (until subscribed, at most connect +
   * command timeout) is shared by every handshake meanwhile; later calls never wait: a subscriber
   * that is reconnecting tells the listener when it is back, which then re-reads what it shows.
   */
  start(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#firstWait === null) {
      this.#open();
      this.#firstWait = new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, this.#waitMs);
        timer.unref();
        this.#waiters.add(done);
      });
    }
    return this.#firstWait;
  }

  /**
   * Subscribes to session `id`'s notices (no-op if already). Resolves once subscribed, at most
   * connect + command timeout later; when the subscriber is not subscribed now, at once: its
   * next subscription includes the channel and tells the listener (epoch) to re-read.
   */
  follow(id: string): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const confirmed = this.#sessions.add(id, this.#subscribed ? this.#client : null);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#waitMs)).unref());
    return Promise.race([confirmed, late]).finally(() => clearTimeout(timer));
  }

  /** Stops hearing session `id`'s notices (its last socket here closed). */
  unfollow(id: string): void {
    this.#sessions.remove(id, this.#client);
  }

  /** True while this node wants session `id`'s notices. */
  follows(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** Unsubscribes and closes the connection (app shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#subscribed = false;
    this.#wake();
    const client = this.#client;
    this.#client = null;
    if (client === null) return;
    client.removeAllListeners('ready');
    // QUIT lets Redis drop the subscription at once; a stalled Redis must not hold up shutdown long.
    if (client.status === 'ready') {
      await Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 250).unref())]);
    }
    client.disconnect();
  }

  #open(): void {
    const client = this.#store.pool.dedicatedClient('subscriber');
    this.#client = client;
    this.#metrics?.watchSubscriber(client);
    client.on('error', (error: Error) => this.#subscribed && this.#outage.lost(error));
    client.on('close', () => {
      if (this.#subscribed && !this.#closed) this.#outage.lost(new Error('connection closed'));
      this.#subscribed = false;
    });
    client.on('message', (channel: string, message: string) => this.#message(channel, message));
    // 'ready' comes after every (re)connect; subscribing ourselves (ioredis would re-subscribe too)
    // tells us when the subscription is back, and only then may missed notices be re-read.
    client.on('ready', () => this.#subscribe(client));
    client.connect().catch((error: Error) => trace('notice subscriber connect: %s', error.message));
  }

  #subscribe(client: RedisClient): void {
    client.subscribe(this.#usersChannel, ...this.#sessions.channels()).then(
      () => {
        if (this.#client !== client) return;
        this.#subscribed = true;
        this.#epoch++;
        trace('notice subscriber: subscribed to %s and %d session channels (epoch %d)', this.#usersChannel, this.#sessions.size, this.#epoch);
        this.#outage.back();
        this.#wake();
        // Cheap when nothing is registered yet (the first subscription, awaited by the handshake).
        this.#listener?.resubscribed();
      },
      (error: Error) => trace('notice subscriber: SUBSCRIBE failed (retried on reconnect): %s', error.message),
    );
  }

  /**
   * One pub/sub message. Anyone who can PUBLISH reaches this on every node, so nothing here may
   * throw: it runs inside ioredis's socket handler, where a throw is an uncaught exception and
   * the process exits. A malformed notice is ignored, a failing listener logged.
   */
  #message(channel: string, message: string): void {
    const listener = this.#listener;
    if (listener === null) return;
    try {
      if (channel === this.#usersChannel) {
        const notice = decodeUserNotice(message);
        if (notice !== null) listener.userNotice(notice);
        else trace('notice subscriber: ignored %j on %s', message.slice(0, 200), channel);
        return;
      }
      // Every other channel is a session's own: its notice names the session.
      this.#metrics?.sessionNoticeReceived();
      const notice = decodeNotice(message);
      if (notice !== null && isSessionId(notice.id) && (notice.kind !== 'renamed' || isSessionId(notice.to))) traceNotice(notice.id, notice.kind, () => listener.sessionNotice(notice));
      else trace('notice subscriber: ignored %j on %s', message.slice(0, 200), channel);
    } catch (error) {
      this.#logger.error({ channel, notice: message.slice(0, 200), err: error }, 'a notice could not be applied; ignored');
    }
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

/**
 * @module SessionManager: the singleton controllers get injected. start → modify → persist.
 *
 * Nothing happens until `start(request)`: no cookie parsing, no HMAC, no Redis command. The
 * keepsake fastify plugin persists every started session after the controller returns.
 */
import type { KeepsakeConfig } from '../config/schema.js';
import { SessionPluginMissingError } from '../errors.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import { requestLogger } from '../logging/app-logger.js';
import { traceLoad, tracePersist } from '../tracing/session-channels.js';
import { keepsLifespan } from './keep-lifespan.js';
import type { CookieCodec } from './cookie-codec.js';
import { newAnonymousTag, newSessionId } from './session-id.js';
import { SessionData } from './session-data.js';
import { SessionFlash } from './session-flash.js';
import { silentObserver, type SessionObserver } from './session-observer.js';
import { Session, type SessionMeta } from './session.js';
import { FIELD } from '../redis/redis-functions.js';
import type { SessionStore, StoredSession } from './session-store.js';
import type { SessionUpdater } from './session-updater.js';
import { UserIndex } from './user-index.js';
import type { ValueCodec } from './value-codec.js';

/** The per-request slot the keepsake plugin decorates every request with. */
export const kSessionState = Symbol.for('keepsake.sessionState');

/** What the manager needs of a request: its headers and the plugin's slot. */
export interface SessionRequest {
  readonly headers: { readonly cookie?: string | undefined };
}

/** @internal What a request did with its session. */
export interface RequestSessionState {
  session: Session | null;
  opening: Promise<Session> | null;
  /** The Set-Cookie the reply must carry: the session's cookie, its removal, or none. */
  cookie: 'set' | 'clear' | null;
  destroyed: boolean;
  /**
   * Redis already failed this request (its reply is the 503): nothing is persisted after that,
   * since nothing is retried after a timeout, and no cookie names a session that was not stored.
   */
  storeFailed: boolean;
}

export interface SessionManagerDeps {
  config: KeepsakeConfig;
  sessionStore: SessionStore;
  cookieCodec: CookieCodec;
  valueCodec: ValueCodec;
  sessionUpdater: SessionUpdater;
  sessionObserver?: SessionObserver;
  /** Which sessions each user is logged in with. @default one over sessionStore */
  userIndex?: UserIndex;
  /** Where corrupt stored bytes and rejected cookies are reported. @default consoleLogger */
  logger?: KeepsakeLogger;
}

/**
 * The singleton that gives controllers their session: start → modify → persist. Registered in
 * the container as `sessionManager`; inject it into your controllers.
 * @example
 * class GreetingController {
 *   constructor(private readonly sessions: SessionManager) {}
 *   async hello(request: FastifyRequest) {
 *     const session = await this.sessions.start(request);
 *     session.data.put('name', 'Ada'); // stored by the plugin before the reply leaves
 *     return { visits: await session.data.update('visits', (n = 0) => n + 1) };
 *   }
 * }
 */
export class SessionManager {
  readonly #config: KeepsakeConfig;
  readonly #store: SessionStore;
  readonly #cookies: CookieCodec;
  readonly #codec: ValueCodec;
  readonly #updater: SessionUpdater;
  readonly #observer: SessionObserver;
  readonly #users: UserIndex;
  readonly #logger: KeepsakeLogger;

  constructor(deps: SessionManagerDeps) {
    this.#config = deps.config;
    this.#store = deps.sessionStore;
    this.#cookies = deps.cookieCodec;
    this.#codec = deps.valueCodec;
    this.#updater = deps.sessionUpdater;
    this.#observer = deps.sessionObserver ?? silentObserver;
    this.#users = deps.userIndex ?? new UserIndex({ config: deps.config, sessionStore: deps.sessionStore });
    this.#logger = deps.logger ?? consoleLogger;
  }

  /** @internal Where keepsake logs; the session plugin points it at the app's logger. */
  get logger(): KeepsakeLogger {
    return this.#logger;
  }

  /**
   * The request's session: the one its signed cookie names, or a new one (which sets the cookie).
   * A second call in the same request returns the same Session.
   * @example const session = await sessions.start(request); session.data.put('name', 'Ada');
   * @throws SessionStoreUnavailableError when Redis cannot be reached in time.
   */
  start(request: SessionRequest): Promise<Session> {
    const state = this.#state(request);
    if (state.session !== null) return Promise.resolve(state.session);
    if (state.opening !== null) return state.opening;
    const opening = this.#openSession(request, state);
    // A new session is in place at once (nothing to wait for); a load is shared with a second start().
    if (state.session === null) state.opening = opening;
    return opening;
  }

  /**
   * The read path: the session a cookie names, or null. Never creates one and sets no cookie
   * (WebSocket handshakes, routes that only look).
   */
  async restore(request: SessionRequest | string | undefined): Promise<Session | null> {
    const header = typeof request === 'object' ? request.headers.cookie : request;
    const cookie = this.#cookies.read(header);
    if (cookie === null) return null;
    const extend = typeof request !== 'object' || !keepsLifespan(request);
    const stored = await this.#loadLive(cookie.id, extend);
    return stored === null ? null : this.#materialize(cookie.id, stored, false, extend);
  }

  /** Reads session `id` straight from the store without refreshing it (CLI, WebSocket views). */
  async peek(id: string): Promise<Session | null> {
    const stored = await this.#store.peek(id);
    return stored === null ? null : this.#materialize(id, stored, false);
  }

  /**
   * Writes the request's session now: only keys whose bytes changed, one round trip. The plugin
   * calls this after the controller; call it yourself to persist earlier.
   */
  async persistSession(request: SessionRequest): Promise<void> {
    const state = this.#slot(request);
    if (state?.session == null || state.destroyed) return;
    await this.persist(state.session);
  }

  /**
   * @internal False when a persist of `session` would certainly write nothing (checked without
   * encoding anything); true when it may have something to write.
   */
  mayPersist(session: Session): boolean {
    return session.fresh || session.userChanged || session.flashes.changed || session.data.mayHaveChanged;
  }

  /** Writes `session`'s changes (creating it in the store if it is new). */
  persist(session: Session): Promise<void> {
    return tracePersist(session.id, session.fresh, () => this.#persist(session));
  }

  async #persist(session: Session): Promise<void> {
    const changes = session.data.changes();
    const empty = !changes.cleared && changes.sets.size === 0 && changes.deletes.length === 0;
    const user = session.userChanged ? session.meta.userId : undefined;
    const flashes = session.flashes.changed ? session.flashes.changes() : undefined;
    if (empty && !session.fresh && user === undefined && flashes === undefined) return; // unchanged: the load refreshed the TTL
    const fields = new Map<string, Buffer | string>();
    const deleteFields: string[] = [];
    if (typeof user === 'string') fields.set(FIELD.user, user);
    if (user === null) deleteFields.push(FIELD.user);
    for (const [key, bytes] of flashes?.sets ?? []) fields.set(FIELD.flash + key, bytes);
    for (const key of flashes?.deletes ?? []) deleteFields.push(FIELD.flash + key);
    const began = performance.now();
    const refreshTtl = this.#store.ttlStale(session.ttlRefreshedAt);
    try {
      await this.#store.write(session.id, {
        create: session.fresh ? { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag } : undefined,
        createdAt: session.meta.createdAt,
        changes,
        fields: fields.size > 0 ? fields : undefined,
        deleteFields: deleteFields.length > 0 ? deleteFields : undefined,
        refreshTtl,
      });
    } catch (error) {
      this.#observer.persistFailed(error);
      throw error;
    }
    if (refreshTtl) session.markTtlRefreshed();
    session.markStored();
    session.data.commit(changes);
    session.userStored();
    if (flashes !== undefined) session.flashes.commit(flashes);
    this.#observer.persisted(performance.now() - began);
  }

  /**
   * Login: moves the session to a new id (the old key is gone in the same atomic step, data
   * carried over), optionally binds a user, and sets the new cookie. Open sockets follow.
   * @example await sessions.regenerate(request, { userId: 'alice' });
   */
  async regenerate(request: SessionRequest, options: { userId?: string } = {}): Promise<Session> {
    const session = await this.start(request);
    const state = this.#state(request);
    const previous = { id: session.id, userId: session.meta.userId, stored: !session.fresh };
    const id = session.fresh ? newSessionId() : this.#store.successorId(session.id);
    // Sockets hear of the new id only once the user is bound and the data written (announced
    // below): told with the rename itself, they would first show the session still anonymous.
    let renamed = false;
    if (!session.fresh) {
      renamed = await this.#store.rename(session.id, id, session.meta.createdAt, { announce: false });
      if (renamed) session.markTtlRefreshed();
      // Ended meanwhile (logout elsewhere, expiry): what this request holds becomes a new session.
      else session.markFresh();
    }
    session.changeId(id);
    if (options.userId !== undefined) session.bindUser(options.userId);
    state.cookie = 'set';
    try {
      // The index first: a session bound to a user but missing from the index would survive
      // "log out everywhere"; an index entry without its session is only pruned later.
      const userId = session.meta.userId;
      await Promise.all([
        previous.userId !== null && previous.stored ? this.#users.remove(previous.userId, previous.id) : undefined,
        userId !== null ? this.#users.add(userId, id, session.meta.createdAt) : undefined,
      ]);
      await this.persist(session);
    } finally {
      // Even if the writes failed: the key did move, and the sockets must follow it. If Redis
      // cannot be told, the login stands: the expiry sweep closes sockets left on the old id.
      if (renamed) {
        await this.#store.announceRename(previous.id, id).catch((error: unknown) => {
          this.#logger.warn({ user: session.user, err: error }, 'could not tell the nodes about a login; its sockets will be closed');
        });
      }
    }
    return session;
  }

  /**
   * Logout: deletes the session, clears the cookie (Max-Age=0) and closes its sockets on every
   * node. Works whether or not the request started the session.
   */
  async destroy(request: SessionRequest): Promise<void> {
    const state = this.#state(request);
    const session = state.session ?? (await this.restore(request));
    state.destroyed = true;
    state.cookie = 'clear';
    if (session === null || session.fresh) return;
    const userId = session.meta.userId;
    await Promise.all([this.#store.destroy(session.id), userId !== null ? this.#users.remove(userId, session.id) : undefined]);
  }

  /**
   * Log out everywhere: ends every session `userId` is logged in with. Each one is destroyed on
   * its own (one key each, Redis Cluster safe) and every app node is told, so their sockets close
   * with 4401. A login racing with this call may survive it.
   * @returns how many sessions ended.
   * @example await sessions.destroyUser('alice'); // after a password change
   */
  async destroyUser(userId: string): Promise<number> {
    const ids = await this.#users.members(userId);
    const ended = await Promise.all(ids.map((id) => this.#store.destroy(id)));
    await this.#users.remove(userId, ...ids);
    return ended.filter(Boolean).length;
  }

  /**
   * Ends session `id` (the CLI, an admin screen): its cookie stops working and every node closes
   * its sockets with 4401. False when the store has no such session.
   */
  async destroyById(id: string): Promise<boolean> {
    const stored = await this.#store.peek(id);
    if (stored === null) return false;
    const userId = stored.meta.userId;
    const [existed] = await Promise.all([this.#store.destroy(id), userId !== null ? this.#users.remove(userId, id) : undefined]);
    return existed;
  }

  /** The ids of the sessions `userId` is logged in with now (ids of ended sessions are pruned). */
  userSessions(userId: string): Promise<string[]> {
    return this.#users.list(userId);
  }

  /** @internal The Set-Cookie header the reply must carry, if any. */
  outgoingCookie(state: RequestSessionState): string | undefined {
    if (state.cookie === 'clear') return this.#cookies.clear();
    if (state.cookie === 'set' && state.session !== null) return this.#cookies.serialize(state.session.id, this.#secondsLeft(state.session));
    return undefined;
  }

  /** @internal The request's state if it started a session. */
  stateOf(request: SessionRequest): RequestSessionState | null {
    return this.#slot(request) ?? null;
  }

  get store(): SessionStore {
    return this.#store;
  }

  get config(): KeepsakeConfig {
    return this.#config;
  }

  async #openSession(request: SessionRequest, state: RequestSessionState): Promise<Session> {
    const cookie = this.#cookies.read(request.headers.cookie);
    let session: Session | null = null;
    const extend = !keepsLifespan(request);
    if (cookie !== null) {
      let stored: StoredSession | null;
      try {
        stored = await this.#loadLive(cookie.id, extend);
      } finally {
        state.opening = null; // set by start() once this call returned its promise
      }
      if (stored !== null) {
        session = this.#materialize(cookie.id, stored, false, extend);
        if (!cookie.signedWithCurrentSecret || (extend && this.#cookieAgeing(session))) state.cookie = 'set';
      } else {
        requestLogger(request, this.#logger).debug({}, 'session cookie names no stored session (ended or expired); starting a new one');
      }
    } else if (request.headers.cookie?.includes(`${this.#cookies.name}=`)) {
      this.#observer.cookieRejected?.();
      requestLogger(request, this.#logger).debug({}, 'session cookie rejected (malformed, oversized, tampered or signed with an unknown secret); starting a new one');
    }
    if (session === null) {
      // Ids the store does not know are never adopted (no fixation): a new id every time.
      const meta = { createdAt: Date.now(), anonTag: newAnonymousTag(), userId: null };
      session = this.#create(newSessionId(), meta, new Map(), true);
      state.cookie = 'set';
    }
    state.session = session;
    this.#observer.started(session.fresh);
    return session;
  }

  /** Loads a session, treating one past its absolute lifetime as gone (and removing it). */
  async #loadLive(id: string, extend = true): Promise<StoredSession | null> {
    const began = performance.now();
    const stored = await traceLoad(id, () => this.#store.load(id, extend));
    this.#observer.loaded?.(performance.now() - began);
    if (stored === null) return null;
    const absolute = this.#config.session.absolute_lifespan;
    if (absolute > 0 && Date.now() - stored.meta.createdAt >= absolute * 1000) {
      const userId = stored.meta.userId;
      await Promise.all([this.#store.destroy(id), userId !== null ? this.#users.remove(userId, id) : undefined]);
      return null;
    }
    if (stored.meta.userId !== null && extend) this.#users.touch(stored.meta.userId);
    return stored;
  }

  /** @param refreshed the load that read `stored` refreshed its TTL (a peek does not). */
  #materialize(id: string, stored: StoredSession, fresh: boolean, refreshed = false): Session {
    const session = this.#create(id, { ...stored.meta }, stored.data, fresh, stored.flash);
    if (refreshed) session.markTtlRefreshed();
    return session;
  }

  // Session and its data point at each other through update(); wire them once here.
  #create(id: string, meta: SessionMeta, stored: Map<string, Buffer>, fresh: boolean, flash = new Map<string, Buffer>()): Session {
    let session: Session | undefined;
    // Corrupt bytes in one field cost that key only; the rest of the session survives. The id
    // is a credential: the log names the user instead.
    const onUndecodable = (key: string, error: unknown) =>
      this.#logger.warn({ key, user: session?.user, err: error }, 'session value holds undecodable bytes; treated as absent');
    const data = new SessionData(this.#codec, stored, (key, fn) => this.#updater.update(session!, key, fn), onUndecodable);
    session = new Session(id, data, meta, fresh, new SessionFlash(this.#codec, flash, onUndecodable));
    return session;
  }

  /** Seconds until the absolute end of `session`, when absolute_lifespan is set: the cookie's Max-Age cap. */
  #secondsLeft(session: Session): number | undefined {
    const absolute = this.#config.session.absolute_lifespan;
    return absolute > 0 ? (session.meta.createdAt + absolute * 1000 - Date.now()) / 1000 : undefined;
  }

  /** Re-send the cookie once past half its lifespan, so Max-Age keeps pace with the rolling TTL. */
  #cookieAgeing(session: Session): boolean {
    return Date.now() - session.meta.createdAt > (this.#config.session.cookie_lifespan * 1000) / 2;
  }

  #state(request: SessionRequest): RequestSessionState {
    const slot = this.#slot(request);
    if (slot === undefined) throw new SessionPluginMissingError();
    if (slot !== null) return slot;
    const state: RequestSessionState = { session: null, opening: null, cookie: null, destroyed: false, storeFailed: false };
    (request as unknown as Record<symbol, RequestSessionState>)[kSessionState] = state;
    return state;
  }

  #slot(request: SessionRequest): RequestSessionState | null | undefined {
    return (request as unknown as Record<symbol, RequestSessionState | null | undefined>)[kSessionState];
  }
}

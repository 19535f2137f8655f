/**
 * @module SessionManager: the singleton controllers get injected. start → modify → persist.
 *
 * Nothing happens until `start(request)`: no cookie parsing, no HMAC, no Redis command. The
 * keepsake fastify plugin persists every started session after the controller returns.
 */
import type { KeepsakeConfig } from '../config/schema.js';
import { SessionPluginMissingError } from '../errors.js';
import type { CookieCodec } from './cookie-codec.js';
import { newAnonymousTag, newSessionId } from './session-id.js';
import { SessionData } from './session-data.js';
import { silentObserver, type SessionObserver } from './session-observer.js';
import { Session, type SessionMeta } from './session.js';
import { FIELD } from '../redis/redis-functions.js';
import type { SessionStore, StoredSession } from './session-store.js';
import type { SessionUpdater } from './session-updater.js';
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
}

export interface SessionManagerDeps {
  config: KeepsakeConfig;
  sessionStore: SessionStore;
  cookieCodec: CookieCodec;
  valueCodec: ValueCodec;
  sessionUpdater: SessionUpdater;
  sessionObserver?: SessionObserver;
}

export class SessionManager {
  readonly #config: KeepsakeConfig;
  readonly #store: SessionStore;
  readonly #cookies: CookieCodec;
  readonly #codec: ValueCodec;
  readonly #updater: SessionUpdater;
  readonly #observer: SessionObserver;

  constructor(deps: SessionManagerDeps) {
    this.#config = deps.config;
    this.#store = deps.sessionStore;
    this.#cookies = deps.cookieCodec;
    this.#codec = deps.valueCodec;
    this.#updater = deps.sessionUpdater;
    this.#observer = deps.sessionObserver ?? silentObserver;
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
    state.opening ??= this.#open(request, state).finally(() => {
      state.opening = null;
    });
    return state.opening;
  }

  /**
   * The read path: the session a cookie names, or null. Never creates one and sets no cookie
   * (WebSocket handshakes, routes that only look).
   */
  async restore(request: SessionRequest | string | undefined): Promise<Session | null> {
    const header = typeof request === 'object' ? request.headers.cookie : request;
    const cookie = this.#cookies.read(header);
    if (cookie === null) return null;
    const stored = await this.#loadLive(cookie.id);
    return stored === null ? null : this.#materialize(cookie.id, stored, false);
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

  /** Writes `session`'s changes (creating it in the store if it is new). */
  async persist(session: Session): Promise<void> {
    const changes = session.data.changes();
    const empty = !changes.cleared && changes.sets.size === 0 && changes.deletes.length === 0;
    const user = session.userChanged ? session.meta.userId : undefined;
    if (empty && !session.fresh && user === undefined) return; // unchanged: the load refreshed the TTL
    const began = performance.now();
    try {
      await this.#store.write(session.id, {
        create: session.fresh ? { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag } : undefined,
        changes,
        fields: typeof user === 'string' ? new Map([[FIELD.user, user]]) : undefined,
        deleteFields: user === null ? [FIELD.user] : undefined,
      });
    } catch (error) {
      this.#observer.persistFailed(error);
      throw error;
    }
    session.markStored();
    session.data.commit(changes);
    session.userStored();
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
    const id = newSessionId();
    if (!session.fresh && !(await this.#store.rename(session.id, id))) {
      // Ended meanwhile (logout elsewhere, expiry): what this request holds becomes a new session.
      session.markFresh();
    }
    session.changeId(id);
    if (options.userId !== undefined) session.bindUser(options.userId);
    state.cookie = 'set';
    await this.persist(session);
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
    if (session !== null && !session.fresh) await this.#store.destroy(session.id);
  }

  /** @internal The Set-Cookie header the reply must carry, if any. */
  outgoingCookie(state: RequestSessionState): string | undefined {
    if (state.cookie === 'clear') return this.#cookies.clear();
    if (state.cookie === 'set' && state.session !== null) return this.#cookies.serialize(state.session.id);
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

  async #open(request: SessionRequest, state: RequestSessionState): Promise<Session> {
    const cookie = this.#cookies.read(request.headers.cookie);
    let session: Session | null = null;
    if (cookie !== null) {
      const stored = await this.#loadLive(cookie.id);
      if (stored !== null) {
        session = this.#materialize(cookie.id, stored, false);
        if (!cookie.signedWithCurrentSecret || this.#cookieAgeing(session)) state.cookie = 'set';
      }
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
  async #loadLive(id: string): Promise<StoredSession | null> {
    const stored = await this.#store.load(id);
    if (stored === null) return null;
    const absolute = this.#config.session.absolute_lifespan;
    if (absolute > 0 && Date.now() - stored.meta.createdAt >= absolute * 1000) {
      await this.#store.destroy(id);
      return null;
    }
    return stored;
  }

  #materialize(id: string, stored: StoredSession, fresh: boolean): Session {
    return this.#create(id, { ...stored.meta }, stored.data, fresh);
  }

  // Session and its data point at each other through update(); wire them once here.
  #create(id: string, meta: SessionMeta, stored: Map<string, Buffer>, fresh: boolean): Session {
    let session: Session | undefined;
    const data = new SessionData(this.#codec, stored, (key, fn) => this.#updater.update(session!, key, fn));
    session = new Session(id, data, meta, fresh);
    return session;
  }

  /** Re-send the cookie once past half its lifespan, so Max-Age keeps pace with the rolling TTL. */
  #cookieAgeing(session: Session): boolean {
    return Date.now() - session.meta.createdAt > (this.#config.session.cookie_lifespan * 1000) / 2;
  }

  #state(request: SessionRequest): RequestSessionState {
    const slot = this.#slot(request);
    if (slot === undefined) throw new SessionPluginMissingError();
    if (slot !== null) return slot;
    const state: RequestSessionState = { session: null, opening: null, cookie: null, destroyed: false };
    (request as unknown as Record<symbol, RequestSessionState>)[kSessionState] = state;
    return state;
  }

  #slot(request: SessionRequest): RequestSessionState | null | undefined {
    return (request as unknown as Record<symbol, RequestSessionState | null | undefined>)[kSessionState];
  }
}

/**
 * @module SessionManager: the singleton controllers get injected. start → modify → persist.
 *
 * Nothing happens until `start(request)`: no cookie parsing, no HMAC, no Redis command. The
 * keepsake fastify plugin persists every started session after the controller returns.
 */
import type { KeepsakeConfig } from '../config/schema.js';
import type { LegacySessions } from '../legacy/legacy-sessions.js';
import { putLegacyValues, type LegacyContent } from '../legacy/legacy-values.js';
import { SessionLifespanError, SessionPluginMissingError } from '../errors.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import { requestLogger } from '../logging/app-logger.js';
import { traceLoad, tracePersist } from '../tracing/session-channels.js';
import { keepsLifespan } from './keep-lifespan.js';
import type { CookieCodec } from './cookie-codec.js';
import { DEVICE_FIELD, LastSeenThrottle, lastSeenStale, loginDeviceFields } from './device-info.js';
import { deviceView, Devices, type Device } from './devices.js';
import { newAnonymousTag, newSessionId } from './session-id.js';
import { SessionData } from './session-data.js';
import { SessionFlash } from './session-flash.js';
import { silentObserver, type SessionObserver } from './session-observer.js';
import { Session, type SessionMeta } from './session.js';
import { FIELD } from '../redis/redis-functions.js';
import { COOKIE_SENT_FIELD, type SessionStore, type StoredSession, type WriteRequest } from './session-store.js';
import type { FlashChanges } from './session-flash.js';
import type { SessionUpdater } from './session-updater.js';
import { UserIndex } from './user-index.js';
import type { ValueCodec } from './value-codec.js';

/** The cookie is re-sent once this fraction (1/n) of cookie_lifespan has passed since it was last sent. */
const COOKIE_RESEND_FRACTION = 10;

/** The longest lifespan a login may choose (s): browsers cap a cookie's Max-Age at 400 days. */
export const MAX_SESSION_LIFESPAN = 400 * 24 * 60 * 60;

/** A persist's write request, whether it changes anything, and the flash changes it carries. */
interface PendingWrite {
  readonly request: WriteRequest;
  readonly empty: boolean;
  readonly flashes: FlashChanges | undefined;
  /** Data, flash or a user: a short-lived empty session gets its full lifespan. */
  readonly holdsSomething: boolean;
  /** Written with empty_session_lifespan as its TTL. */
  readonly shortLived: boolean;
  /** The m:k it writes, if the cookie was re-sent. */
  readonly cookieSentAt: number | undefined;
}

/** The per-request slot the keepsake plugin decorates every request with. */
export const kSessionState = Symbol.for('keepsake.sessionState');

/** What the manager needs of a request: its headers and the plugin's slot. */
export interface SessionRequest {
  readonly headers: { readonly cookie?: string | undefined; readonly 'user-agent'?: string | undefined };
  /** The client IP (fastify's request.ip), recorded with the device at login. */
  readonly ip?: string | undefined;
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
  /** The Set-Cookie that clears an adopted legacy cookie (src/legacy/), sent beside keepsake's own. */
  legacyCookie?: string;
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
  /** A user's devices (listing, presence, the `devices` push). @default one over sessionStore and userIndex */
  devices?: Devices;
  /** Adopts @fastify/session and express-session sessions (`[legacy_sessions]`); null without that section. */
  legacySessions?: LegacySessions | null;
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
  /** TTL of a session that holds nothing yet (ms; 0 = cookie_lifespan). */
  readonly #emptyLifespanMs: number;
  readonly #devices: Devices;
  readonly #lastSeen = new LastSeenThrottle();
  readonly #legacy: LegacySessions | null;

  constructor(deps: SessionManagerDeps) {
    this.#config = deps.config;
    this.#emptyLifespanMs = deps.config.session.empty_session_lifespan * 1000;
    this.#store = deps.sessionStore;
    this.#cookies = deps.cookieCodec;
    this.#codec = deps.valueCodec;
    this.#updater = deps.sessionUpdater;
    this.#observer = deps.sessionObserver ?? silentObserver;
    this.#users = deps.userIndex ?? new UserIndex({ config: deps.config, sessionStore: deps.sessionStore });
    this.#logger = deps.logger ?? consoleLogger;
    this.#devices = deps.devices ?? new Devices({ config: deps.config, sessionStore: deps.sessionStore, userIndex: this.#users });
    this.#legacy = deps.legacySessions ?? null;
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
   * (WebSocket handshakes, routes that only look). A legacy cookie adopts nothing here: a
   * handshake cannot set the cookie of a session it would make (docs/migrating.md).
   */
  async restore(request: SessionRequest | string | undefined): Promise<Session | null> {
    const header = typeof request === 'object' ? request.headers.cookie : request;
    const cookie = this.#cookies.read(header);
    if (cookie === null) return null;
    const extend = typeof request !== 'object' || !keepsLifespan(request);
    const stored = await this.#loadLive(cookie.id, extend);
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

  /**
   * @internal False when a persist of `session` would certainly write nothing (checked without
   * encoding anything); true when it may have something to write.
   */
  mayPersist(session: Session): boolean {
    return session.fresh || session.userChanged || session.flashes.changed || session.data.mayHaveChanged || session.cookieSentChanged || session.deviceFields.size > 0;
  }

  /** Writes `session`'s changes (creating it in the store if it is new). */
  persist(session: Session): Promise<void> {
    return tracePersist(session.id, session.fresh, () => this.#persist(session));
  }

  async #persist(session: Session): Promise<void> {
    const pending = this.#pending(session);
    if (pending.empty && !session.fresh) return; // unchanged: the load refreshed the TTL
    const began = performance.now();
    try {
      await this.#store.write(session.id, pending.request);
    } catch (error) {
      this.#observer.persistFailed(error);
      throw error;
    }
    this.#stored(session, pending, began);
  }

  /**
   * What a persist of `session` writes: its data and flash changes, and its user binding (or
   * `user`, a binding not made on the session yet: login writes it before binding it).
   */
  #pending(session: Session, user: string | null | undefined = session.userChanged ? session.meta.userId : undefined, lifespan?: number | null): PendingWrite {
    const changes = session.data.changes();
    const flashes = session.flashes.changed ? session.flashes.changes() : undefined;
    const device = session.deviceFields;
    const cookieSentAt = session.cookieSentChanged ? session.meta.cookieSentAt : undefined;
    const empty = !changes.cleared && changes.sets.size === 0 && changes.deletes.length === 0 && user === undefined && flashes === undefined && cookieSentAt === undefined && device.size === 0;
    // A session created holding nothing (no data, flash or user) lives empty_session_lifespan;
    // its first write of data gives it the full lifespan.
    const boundUser = user !== undefined ? user : session.meta.userId;
    const holdsSomething = changes.sets.size > 0 || (flashes?.sets.size ?? 0) > 0 || boundUser !== null;
    const shortLived = (session.fresh || session.shortLived) && !holdsSomething && this.#emptyLifespanMs > 0;
    const fields = new Map<string, Buffer | string>(device);
    const deleteFields: string[] = [];
    if (cookieSentAt !== undefined) fields.set(COOKIE_SENT_FIELD, String(cookieSentAt));
    if (typeof user === 'string') fields.set(FIELD.user, user);
    if (user === null) deleteFields.push(FIELD.user);
    // A login's lifespan (m:l): a number sets it, null goes back to cookie_lifespan, undefined keeps it.
    if (typeof lifespan === 'number') fields.set(FIELD.lifespan, String(lifespan));
    if (lifespan === null) deleteFields.push(FIELD.lifespan);
    for (const [key, bytes] of flashes?.sets ?? []) fields.set(FIELD.flash + key, bytes);
    for (const key of flashes?.deletes ?? []) deleteFields.push(FIELD.flash + key);
    const refreshTtl = (session.shortLived && holdsSomething) || this.#store.refreshDue(session.id, session.meta.lifespan);
    const request: WriteRequest = {
      create: session.fresh ? { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag } : undefined,
      createdAt: session.meta.createdAt,
      sessionLifespan: lifespan === undefined ? session.meta.lifespan : (lifespan ?? undefined),
      changes,
      fields: fields.size > 0 ? fields : undefined,
      deleteFields: deleteFields.length > 0 ? deleteFields : undefined,
      refreshTtl,
      lifespanMs: shortLived ? this.#emptyLifespanMs : undefined,
    };
    return { request, empty, flashes, holdsSomething, shortLived, cookieSentAt };
  }

  /** `session` now holds in memory what `pending` wrote to the store. */
  #stored(session: Session, pending: PendingWrite, began: number): void {
    if (session.fresh || pending.holdsSomething) session.markShortLived(pending.shortLived);
    if (pending.cookieSentAt !== undefined) session.cookieSentStored();
    session.markStored();
    session.data.commit(pending.request.changes);
    session.userStored();
    session.deviceFieldsStored();
    if (pending.flashes !== undefined) session.flashes.commit(pending.flashes);
    this.#observer.persisted(performance.now() - began);
  }

  /**
   * @internal Creates a new session in the store with its metadata only (no data yet), so the
   * cookie about to leave names a session the store knows (`persist = after_response`: the data
   * follows after the reply). Lives empty_session_lifespan until that data arrives.
   */
  async create(session: Session): Promise<void> {
    if (!session.fresh) return;
    const began = performance.now();
    const shortLived = this.#emptyLifespanMs > 0 && session.meta.userId === null;
    try {
      await this.#store.write(session.id, {
        create: { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag },
        createdAt: session.meta.createdAt,
        changes: { sets: new Map(), deletes: [], cleared: false },
        lifespanMs: shortLived ? this.#emptyLifespanMs : undefined,
      });
    } catch (error) {
      this.#observer.persistFailed(error);
      throw error;
    }
    session.markShortLived(shortLived);
    session.markStored();
    this.#observer.persisted(performance.now() - began);
  }

  /**
   * Login: moves the session to a new id (the old key is gone in the same atomic step, data
   * carried over), optionally binds a user, and sets the new cookie. Open sockets follow.
   * All or nothing: if it fails, the request's cookie still names the old session, intact.
   * `lifespan` (seconds, 1 to 400 days) is the session's idle lifespan from now on, instead of
   * cookie_lifespan ("remember me", a kiosk): its TTL, its cookie's Max-Age and every later
   * refresh, on every node. A login (`userId`) without it goes back to cookie_lifespan; a
   * regenerate with neither keeps the session's.
   * @example await sessions.regenerate(request, { userId: 'alice', lifespan: 30 * 24 * 3600 });
   * @throws SessionLifespanError (nothing changed) for a lifespan that is not a whole number of seconds in range.
   */
  async regenerate(request: SessionRequest, options: { userId?: string; lifespan?: number } = {}): Promise<Session> {
    if (options.lifespan !== undefined && !(Number.isSafeInteger(options.lifespan) && options.lifespan >= 1 && options.lifespan <= MAX_SESSION_LIFESPAN)) {
      throw new SessionLifespanError(options.lifespan);
    }
    const session = await this.start(request);
    const state = this.#state(request);
    const previous = { id: session.id, userId: session.meta.userId, stored: !session.fresh };
    let userId = options.userId ?? session.meta.userId;
    const lifespan = options.lifespan ?? (options.userId !== undefined && session.meta.lifespan !== undefined ? null : undefined);
    const lifespanAfter = lifespan === undefined ? session.meta.lifespan : (lifespan ?? undefined);
    // The login's device (User-Agent, IP, handle) rides the login's own commit below.
    if (options.userId !== undefined) session.setDeviceFields(loginDeviceFields(request));
    // The renamed session's cookie is sent now: its Max-Age counts from here (m:k).
    if (!session.fresh) session.cookieSent(Date.now());
    // At most twice: a session that ended meanwhile (logout elsewhere, expiry) is stored anew.
    for (;;) {
      const from = session.fresh ? undefined : session.id;
      const id = from === undefined ? newSessionId() : this.#store.successorId(from);
      // The index first (on a cluster it lives in another slot than the session): an entry whose
      // session never came is pruned by listings, while a session bound to a user but missing
      // from the index would survive "log out everywhere".
      if (userId !== null) await this.#users.add(userId, id, session.meta.createdAt, lifespanAfter);
      // A session stored anew carries its user over explicitly (a rename carries the stored one).
      const pending = this.#pending(session, session.fresh ? userId ?? undefined : options.userId, session.fresh ? lifespanAfter : lifespan);
      const began = performance.now();
      let committed = true;
      try {
        // The commit point: the data, the user and the new id land in one atomic function (that
        // also tells every node), so a failure before or in it leaves the old session as it was.
        if (from === undefined) await this.#store.write(id, pending.request);
        else committed = await this.#store.rename(from, id, pending.request);
      } catch (error) {
        this.#observer.persistFailed(error);
        throw error;
      }
      if (!committed) {
        // Ended meanwhile (a logout or revoke elsewhere): what it held is gone, and so is its
        // login. The visitor goes on in a new session with only this request's own changes (and
        // the user this login names), and the reply shows nothing the store does not have.
        session.markFresh();
        session.data.forgetStored();
        userId = options.userId ?? null;
        if (userId === null && session.meta.userId !== null) session.bindUser(null);
        continue;
      }
      session.changeId(id);
      if (options.userId !== undefined) session.bindUser(options.userId);
      session.meta.lifespan = lifespanAfter;
      this.#stored(session, pending, began);
      break;
    }
    state.cookie = 'set';
    if (previous.userId !== null && previous.stored) {
      // The old id no longer exists: an entry left by a failure here is pruned by listings.
      await this.#users.remove(previous.userId, previous.id).catch((error: unknown) => {
        this.#logger.warn({ user: session.user, err: error }, 'could not remove the pre-login session from its user index; listings prune it');
      });
    }
    this.#devicesChanged(previous.userId, session.meta.userId);
    return session;
  }

  /**
   * Logout: deletes the session, clears the cookie (Max-Age=0) and closes its sockets on every
   * node. Works whether or not the request started the session. A `start()` later in the same
   * request creates and stores a new session, and the reply sets its cookie instead.
   */
  async destroy(request: SessionRequest): Promise<void> {
    const state = this.#state(request);
    const session = state.session ?? (await this.restore(request));
    state.destroyed = true;
    state.cookie = 'clear';
    // A start() after this (a new login, a goodbye flash) gets a new session, not this one.
    state.session = null;
    state.opening = null;
    if (session === null || session.fresh) return;
    const userId = session.meta.userId;
    await Promise.all([this.#store.destroy(session.id), userId !== null ? this.#users.remove(userId, session.id) : undefined]);
    this.#devicesChanged(userId);
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
    if (ids.length > 0) return this.#endSessions(userId, ids);
    this.#devicesChanged(userId);
    return 0;
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
    this.#devicesChanged(userId);
    // null: sent again after a lost reply, the destroy found nothing; the session was there just
    // before (the peek above), so the first send ended it.
    return existed !== false;
  }

  /**
   * The devices `userId` is logged in with: one per session, with device metadata and presence,
   * newest lastSeenAt first. Two round trips whatever their number.
   * @param currentId the asking session's id: its device has `current: true`.
   * @example const devices = await sessions.listDevices(session.meta.userId!, session.id);
   */
  async listDevices(userId: string, currentId?: string): Promise<Device[]> {
    return (await this.#devices.records(userId)).map((record) => deviceView(record, currentId));
  }

  /**
   * Ends `userId`'s session whose device has `handle`, as a logout does (cookie dead, data gone,
   * its sockets on every node closed with 4401). False when no session of this user has that
   * handle (another user's handle included).
   * @example if (!(await sessions.revokeDevice('alice', handle))) reply.code(404);
   */
  async revokeDevice(userId: string, handle: string): Promise<boolean> {
    const record = (await this.#devices.records(userId)).find((candidate) => candidate.handle === handle);
    if (record === undefined) return false;
    await this.#endSessions(userId, [record.id]);
    return true;
  }

  /**
   * Ends every session of `userId` but `keepId` (the current one), as logouts.
   * @returns how many ended.
   * @example await sessions.revokeOtherDevices(session.meta.userId!, session.id);
   */
  async revokeOtherDevices(userId: string, keepId: string): Promise<number> {
    const ids = (await this.#users.members(userId)).filter((id) => id !== keepId);
    return this.#endSessions(userId, ids);
  }

  async #endSessions(userId: string, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const ended = await Promise.all(ids.map((id) => this.#store.destroy(id)));
    // An id with no session may be a login in flight (its index entry comes first): it stays in
    // the index, so that a later call still finds the session it becomes. So does one whose
    // destroy cannot tell (null: a lost reply); listings prune it once no login can be in flight.
    await Promise.all([this.#users.remove(userId, ...ids.filter((_, index) => ended[index] === true)), this.#users.prune(userId, ids.filter((_, index) => ended[index] !== true))]);
    this.#devicesChanged(userId);
    // Counted as ended when it cannot tell: its id came from the index, so it most likely existed.
    return ended.filter((result) => result !== false).length;
  }

  /** Every node pushes the new device list to these users' sockets (not waited for). */
  #devicesChanged(...userIds: (string | null)[]): void {
    for (const userId of new Set(userIds)) if (userId !== null) this.#devices.announceLater(userId);
  }

  /** The ids of the sessions `userId` is logged in with now (ids of ended sessions are pruned). */
  userSessions(userId: string): Promise<string[]> {
    return this.#users.list(userId);
  }

  /** @internal The Set-Cookie header the reply must carry, if any (an adopted legacy cookie's removal is `state.legacyCookie`). */
  outgoingCookie(state: RequestSessionState): string | undefined {
    if (state.cookie === 'clear') return this.#cookies.clear();
    if (state.cookie === 'set' && state.session !== null) return this.#cookies.serialize(state.session.id, this.#secondsLeft(state.session), state.session.meta.lifespan);
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
    // After destroy() the request's cookie names the session just ended: start a new one.
    const afterDestroy = state.destroyed;
    const cookie = afterDestroy ? null : this.#cookies.read(request.headers.cookie);
    state.destroyed = false;
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
        session = this.#materialize(cookie.id, stored, false);
        // A logged-in device's "last seen": one extra write a minute at most, none within it.
        if (extend && session.authenticated && lastSeenStale(stored.meta.lastSeenAt) && this.#lastSeen.claim(cookie.id)) session.setDeviceFields(new Map([[DEVICE_FIELD.lastSeen, String(Date.now())]]));
        // A route that keeps the session's lifespan (polling) re-sends the cookie only for a new secret.
        if (extend) this.#keepCookieInStep(session, cookie.signedWithCurrentSecret, state);
        else if (!cookie.signedWithCurrentSecret) state.cookie = 'set';
      } else {
        requestLogger(request, this.#logger).debug({}, 'session cookie names no stored session (ended or expired); starting a new one');
      }
    } else if (!afterDestroy && request.headers.cookie?.includes(`${this.#cookies.name}=`)) {
      this.#observer.cookieRejected?.();
      requestLogger(request, this.#logger).debug({}, 'session cookie rejected (malformed, oversized, tampered or signed with an unknown secret); starting a new one');
    }
    // Checked before any await: without a legacy cookie a new session is in place at once, as before.
    const legacyId = session === null && this.#legacy !== null ? this.#legacy.cookie.read(request.headers.cookie) : null;
    if (legacyId !== null) session = await this.#adoptLegacy(request, state, legacyId);
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

  /**
   * @internal Stores a new session holding a legacy session's values (those the codec refuses are
   * skipped and counted) and logs its user in through regenerate(), as a login does.
   * `request` is the adopting request, or one with an empty slot (the CLI's adopt-all).
   */
  async storeAdopted(request: SessionRequest, content: LegacyContent): Promise<{ session: Session; skipped: number }> {
    const state = this.#state(request);
    const session = this.#create(newSessionId(), { createdAt: Date.now(), anonTag: newAnonymousTag(), userId: null }, new Map(), true);
    const skipped = putLegacyValues(session.data, content, this.#codec, this.#config.session.max_session_bytes, (key, error) =>
      this.#logger.warn({ key, err: error }, 'legacy session value refused by keepsake; skipped'),
    );
    state.session = session;
    state.cookie = 'set';
    if (content.userId === null) await this.persist(session);
    else await this.regenerate(request, { userId: content.userId });
    return { session, skipped };
  }

  /**
   * A request without a live keepsake session but with a valid legacy cookie: the legacy session,
   * adopted (or joined, if a concurrent request adopted it), and the legacy cookie cleared.
   */
  async #adoptLegacy(request: SessionRequest, state: RequestSessionState, legacyId: string): Promise<Session | null> {
    try {
      const session = await this.#legacy!.adopt(legacyId, {
        store: (content) => this.storeAdopted(request, content),
        join: async (id) => {
          const stored = await this.#loadLive(id);
          return stored === null ? null : this.#materialize(id, stored, false);
        },
      });
      state.legacyCookie = this.#legacy!.cookie.clear();
      if (session !== null) state.cookie = 'set';
      return session;
    } finally {
      state.opening = null; // set by start() once this call returned its promise
    }
  }

  /** Loads a session, treating one past its absolute lifetime as gone (and removing it). */
  async #loadLive(id: string, extend = true): Promise<StoredSession | null> {
    const began = performance.now();
    const startedAt = Date.now();
    const stored = await traceLoad(id, () => this.#store.load(id, extend));
    this.#observer.loaded?.(performance.now() - began);
    if (stored === null) return null;
    const absolute = this.#config.session.absolute_lifespan;
    if (absolute > 0 && Date.now() - stored.meta.createdAt >= absolute * 1000) {
      const userId = stored.meta.userId;
      await Promise.all([this.#store.destroy(id), userId !== null ? this.#users.remove(userId, id) : undefined]);
      return null;
    }
    // The index follows the session's TTL: pushed forward only when this load refreshed it.
    if (stored.meta.userId !== null && extend && this.#store.refreshedSince(id, startedAt)) this.#users.touch(stored.meta.userId, stored.meta.lifespan);
    return stored;
  }

  #materialize(id: string, stored: StoredSession, fresh: boolean): Session {
    return this.#create(id, { ...stored.meta }, stored.data, fresh, stored.flash);
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

  /**
   * Re-sends the cookie when a tenth of its lifespan has passed since it was last sent, so its
   * Max-Age follows activity as the Redis TTL does (the cookie expires at most a tenth of the
   * lifespan before the key). When it was sent is kept in metadata (one field written per
   * re-send, no data); a large session read from this node's copy does not know it, so its cookie
   * is re-sent with every reply, without a write.
   */
  #keepCookieInStep(session: Session, signedWithCurrentSecret: boolean, state: RequestSessionState): void {
    const sentAt = session.meta.cookieSentAt;
    const now = Date.now();
    const lifespan = session.meta.lifespan ?? this.#config.session.cookie_lifespan;
    const due = sentAt === undefined || now - sentAt > (lifespan * 1000) / COOKIE_RESEND_FRACTION;
    if (!due && signedWithCurrentSecret) return;
    state.cookie = 'set';
    if (sentAt !== undefined) session.cookieSent(now);
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

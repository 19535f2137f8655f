/**
 * @module One visitor's session as a request sees it. No I/O: the manager loads and persists it.
 */
import type { FlashKey, FlashValue } from './flash-values.js';
import type { SessionData } from './session-data.js';
import { SessionFlash } from './session-flash.js';

/** Facts about a session kept beside its data, in fields user keys cannot reach. */
export interface SessionMeta {
  /** When the session was created (ms since epoch); absolute_lifespan counts from here. */
  readonly createdAt: number;
  /** Random tag of the anonymous user, fixed at creation (`anon-<tag>`). */
  readonly anonTag: string;
  /** The user bound by login, or null. */
  userId: string | null;
  /**
   * When the cookie was last sent (ms since epoch): its Max-Age counts from here. Undefined when
   * the load did not read it (a large session served from this node's copy).
   */
  cookieSentAt?: number | undefined;
  /** Device "last seen" (`m:ls`, ms), when the load read it (see device-info.ts). */
  lastSeenAt?: number | undefined;
  /** The idle lifespan (s) the login chose (`m:l`), instead of cookie_lifespan; undefined when it did not. */
  lifespan?: number | undefined;
}

/**
 * One visitor's session, as `SessionManager.start(request)` returns it: its data, its user and
 * its flash values. Changes are stored by the keepsake plugin (or `persistSession`).
 * @example
 * const session = await sessions.start(request);
 * if (!session.authenticated) return reply.code(401).send();
 * session.data.put('name', 'Ada');
 */
export class Session {
  #id: string;
  /** The session's values: get, put, update, ... */
  readonly data: SessionData;
  /** Creation time, anonymous tag and bound user. */
  readonly meta: SessionMeta;
  /** True until the session exists in the store (it is created by the first persist). */
  #fresh: boolean;

  /** @internal Flash values: received from the previous request, and left for the next. */
  readonly flashes: SessionFlash;

  constructor(id: string, data: SessionData, meta: SessionMeta, fresh: boolean, flashes: SessionFlash = new SessionFlash()) {
    this.#id = id;
    this.data = data;
    this.meta = meta;
    this.#fresh = fresh;
    this.flashes = flashes;
  }

  /**
   * Leaves `value` for the next request that starts this session (a message shown after a
   * redirect); it is gone after that request, read or not. `undefined` takes it back.
   * @example session.flash('notice', 'Saved'); // next request: session.flashed('notice') === 'Saved'
   */
  flash<K extends FlashKey>(key: K, value: FlashValue<K> | undefined): void {
    this.flashes.set(key, value);
  }

  /** The value the previous request flashed under `key`, or undefined (typed by FlashValues). */
  flashed<K extends FlashKey>(key: K): FlashValue<K> | undefined {
    return this.flashes.get(key) as FlashValue<K> | undefined;
  }

  /** The session id: what the store keys and the signed cookie carries. */
  get id(): string {
    return this.#id;
  }

  /** True while the session has not been stored yet (created by this request). */
  get fresh(): boolean {
    return this.#fresh;
  }

  /** The user id bound by login, or `anon-<tag>` for an anonymous visitor. */
  get user(): string {
    return this.meta.userId ?? `anon-${this.meta.anonTag}`;
  }

  /** True once a user is bound (login). */
  get authenticated(): boolean {
    return this.meta.userId !== null;
  }

  #userChanged = false;

  /** @internal True when the user binding must be written. */
  get userChanged(): boolean {
    return this.#userChanged;
  }

  /** @internal Binds (or with null, unbinds) a user; written by the next persist. */
  bindUser(userId: string | null): void {
    this.meta.userId = userId;
    this.#userChanged = true;
  }

  /** @internal */
  userStored(): void {
    this.#userChanged = false;
  }

  /** @internal */
  markStored(): void {
    this.#fresh = false;
  }

  #cookieSentChanged = false;

  /** @internal True when the time the cookie was last sent must be written. */
  get cookieSentChanged(): boolean {
    return this.#cookieSentChanged;
  }

  /** @internal The reply re-sends the cookie now; the next persist records when. */
  cookieSent(at: number): void {
    this.meta.cookieSentAt = at;
    this.#cookieSentChanged = true;
  }

  /** @internal */
  cookieSentStored(): void {
    this.#cookieSentChanged = false;
  }

  #shortLived = false;

  /**
   * @internal The store holds this session with nothing in it and the short TTL of
   * `empty_session_lifespan`: its first write of data must give it the full lifespan.
   */
  get shortLived(): boolean {
    return this.#shortLived;
  }

  /** @internal */
  markShortLived(shortLived: boolean): void {
    this.#shortLived = shortLived;
  }

  /** @internal The store no longer has it: the next persist creates it again. */
  markFresh(): void {
    this.#fresh = true;
  }

  readonly #deviceFields = new Map<string, string>();

  /** @internal Device metadata (`m:` fields, device-info.ts) the next persist writes. */
  get deviceFields(): ReadonlyMap<string, string> {
    return this.#deviceFields;
  }

  /** @internal Records device metadata for the next persist. */
  setDeviceFields(fields: ReadonlyMap<string, string>): void {
    for (const [field, value] of fields) this.#deviceFields.set(field, value);
  }

  /** @internal */
  deviceFieldsStored(): void {
    this.#deviceFields.clear();
  }

  /** @internal A regenerated session carries its data under a new id. */
  changeId(id: string): void {
    this.#id = id;
  }
}

/**
 * @module The read-only session a WebSocket route sees. Read-only twice over: its type has no
 * mutators, and at run time every write (a method reached through a cast, an assignment, a
 * mutation of a value it handed out) throws `SessionReadOnlyError`. Values handed out are
 * deep-frozen copies, so nothing a socket handler does can reach the session in Redis, whose
 * only writer is HTTP (@fastify/websocket routes are hijacked: no onSend, no auto-persist).
 *
 * The view is live: the node's notice subscriber swaps what it shows when the session changes.
 */
import { SessionReadOnlyError } from '../errors.js';
import type { SessionKey, SessionValue } from '../session/session-data.js';
import type { Session } from '../session/session.js';

/** `T` with every nested property and element read-only. */
export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends Map<infer K, infer V>
    ? ReadonlyMap<DeepReadonly<K>, DeepReadonly<V>>
    : T extends Set<infer U>
      ? ReadonlySet<DeepReadonly<U>>
      : T extends Date
        ? Readonly<Date>
        : T extends object
          ? { readonly [P in keyof T]: DeepReadonly<T[P]> }
          : T;

/** The data of a read-only session: reads only. */
export interface ReadOnlySessionData {
  /** The value of `key` as a deep-frozen copy (writing to it throws), or undefined. */
  get<K extends SessionKey>(key: K): DeepReadonly<SessionValue<K>> | undefined;
  has(key: SessionKey): boolean;
  /** Every key that has a value. */
  keys(): string[];
  /** A frozen object of every key and (frozen) value. */
  toJSON(): Readonly<Record<string, unknown>>;
}

/**
 * The session of a WebSocket's handshake cookie, read-only and kept current.
 * @example
 * onOpen(conn: Connection) {
 *   conn.send(`Hello ${conn.session.data.get('name') ?? 'stranger'}`);
 * }
 */
export interface ReadOnlySession {
  /** The session id (it follows a login's new id), or null when the handshake had no valid session cookie. */
  readonly id: string | null;
  /** False when the handshake had no valid session cookie: the view is empty and stays so. */
  readonly exists: boolean;
  /** The user bound by login, or `anon-<tag>` (without a session: a tag unique to the connection). */
  readonly user: string;
  /** True once a user is bound (login). */
  readonly authenticated: boolean;
  readonly data: ReadOnlySessionData;
}

/** @internal What the live layer keeps to change what a view shows; never reachable from the view. */
export interface ReadOnlySessionHandle {
  readonly view: ReadOnlySession;
  /** Shows `session` from now on (a newer read, or the session under its new id). */
  show(session: Session): void;
}

// Every mutator of Session and SessionData, so a cast reaches a typed error, not "not a function".
const SESSION_MUTATORS = ['regenerate', 'destroy', 'persist', 'save', 'touch', 'reload', 'flash', 'bindUser', 'changeId', 'markStored', 'markFresh', 'userStored'];
const FLASH_MUTATORS = ['set', 'delete', 'clear', 'commit'];
const DATA_MUTATORS = ['put', 'set', 'delete', 'clear', 'update', 'commit', 'applyUpdate', 'flash', 'pull', 'increment', 'decrement'];

interface ViewState {
  id: string | null;
  user: string;
  authenticated: boolean;
  session: Session | null;
  /** Read-only copies handed out for the session currently shown, by key (made on first get). */
  copies: Map<string, unknown> | null;
  readonly data: ReadOnlySessionData;
}

// State lives here, keyed by the (proxied) view and data objects: nothing reachable from a view
// leads to it or to the Session underneath, and a socket's view costs a few small objects, no
// closures (10,000 sockets are 10,000 views).
const STATES = new WeakMap<object, ViewState>();

function stateOf(self: object): ViewState {
  const state = STATES.get(self);
  if (state === undefined) throw new TypeError('not a read-only session (call its methods on it, not detached)');
  return state;
}

class ReadOnlyData implements ReadOnlySessionData {
  get<K extends SessionKey>(key: K): DeepReadonly<SessionValue<K>> | undefined {
    const state = stateOf(this);
    if (state.copies?.has(key)) return state.copies.get(key) as DeepReadonly<SessionValue<K>>;
    const value = state.session?.data.get(key);
    if (value === undefined) return undefined;
    const copy = readOnlyCopy(value, key);
    (state.copies ??= new Map()).set(key, copy);
    return copy as DeepReadonly<SessionValue<K>>;
  }

  has(key: SessionKey): boolean {
    const session = stateOf(this).session;
    return session !== null && session.data.has(key);
  }

  keys(): string[] {
    const session = stateOf(this).session;
    return session === null ? [] : session.data.keys();
  }

  toJSON(): Readonly<Record<string, unknown>> {
    const entries = this.keys().map((key) => [key, this.get(key as SessionKey)]);
    return guard(Object.freeze(Object.fromEntries(entries)), handlerFor('session data'));
  }
}

class ReadOnlyView implements ReadOnlySession {
  get id(): string | null {
    return stateOf(this).id;
  }
  get exists(): boolean {
    return stateOf(this).session !== null;
  }
  get user(): string {
    return stateOf(this).user;
  }
  get authenticated(): boolean {
    return stateOf(this).authenticated;
  }
  get data(): ReadOnlySessionData {
    return stateOf(this).data;
  }
  /** Not in the type: there for casts to Session. A frozen copy. */
  get meta(): unknown {
    const session = stateOf(this).session;
    return readOnlyCopy(session === null ? { createdAt: 0, anonTag: '', userId: null } : { ...session.meta }, 'meta');
  }
  /** Not in the type: there for casts to Session. Nothing to read, nothing to write. */
  get flashes(): unknown {
    return NO_FLASHES;
  }
  toJSON(): Record<string, unknown> {
    return { id: this.id, exists: this.exists, user: this.user, authenticated: this.authenticated, data: this.data.toJSON() };
  }
}

// Frozen, so a cast cannot swap a method for every view at once.
Object.freeze(ReadOnlyData.prototype);
Object.freeze(ReadOnlyView.prototype);

function newState(user: string): ViewState {
  const data = guard(Object.freeze(new ReadOnlyData()), DATA_HANDLER);
  const state: ViewState = { id: null, user, authenticated: false, session: null, copies: null, data };
  STATES.set(data, state);
  return state;
}

function newView(state: ViewState): ReadOnlySession {
  const view = guard(Object.freeze(new ReadOnlyView()), VIEW_HANDLER);
  STATES.set(view, state);
  return view;
}

/** @internal A live read-only view of `session`. */
export function readOnlySession(session: Session): ReadOnlySessionHandle {
  const state = newState('');
  const show = (next: Session): void => {
    state.id = next.id;
    state.user = next.user;
    state.authenticated = next.authenticated;
    state.session = next;
    state.copies = null;
  };
  show(session);
  return { view: newView(state), show };
}

/** @internal The empty view of a connection whose handshake had no valid session cookie. */
export function emptyReadOnlySession(user: string): ReadOnlySessionHandle {
  return { view: newView(newState(user)), show: showNothing };
}

function showNothing(): never {
  throw new Error('an empty read-only session has no session to show');
}

/**
 * A deep-frozen copy of `value` whose every write throws SessionReadOnlyError (a plain frozen
 * object would only throw a TypeError in strict mode, and stay silent in sloppy mode).
 * Nested values are guarded bottom-up, so the frozen parent holds the guarded child itself
 * (a Proxy over a frozen target must return the target's own property values).
 */
export function readOnlyCopy<T>(value: T, key: string): DeepReadonly<T> {
  return copy(value, key, 0) as DeepReadonly<T>;
}

const MAX_DEPTH = 64;

function copy(value: unknown, key: string, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) return guard(Object.freeze(value.map((item) => copy(item, key, depth + 1))), handlerFor(key));
  if (value instanceof Date) return guardBuiltIn(Object.freeze(new Date(value.getTime())), key, DATE_MUTATORS);
  if (value instanceof Map) {
    const entries = [...value].map(([k, v]) => [copy(k, key, depth + 1), copy(v, key, depth + 1)] as const);
    return guardBuiltIn(Object.freeze(new Map(entries)), key, MAP_MUTATORS);
  }
  if (value instanceof Set) return guardBuiltIn(Object.freeze(new Set([...value].map((item) => copy(item, key, depth + 1)))), key, SET_MUTATORS);
  if (ArrayBuffer.isView(value)) {
    // Typed arrays cannot be frozen; the guard refuses element writes and mutating methods.
    const bytes = value as unknown as Uint8Array;
    return guardBuiltIn(Object.preventExtensions(bytes.slice()), key, TYPED_ARRAY_MUTATORS);
  }
  const out: Record<string, unknown> = {};
  for (const [name, inner] of Object.entries(value)) out[name] = copy(inner, key, depth + 1);
  return guard(Object.freeze(out), handlerFor(key));
}

const DATE_MUTATORS = new Set(Object.getOwnPropertyNames(Date.prototype).filter((name) => name.startsWith('set')));
const MAP_MUTATORS = new Set(['set', 'delete', 'clear']);
const SET_MUTATORS = new Set(['add', 'delete', 'clear']);
const TYPED_ARRAY_MUTATORS = new Set(['set', 'fill', 'copyWithin', 'reverse', 'sort']);

function refuse(what: string, key: string | undefined): never {
  throw new SessionReadOnlyError(what, key);
}

function describe(property: string | symbol): string {
  return typeof property === 'symbol' ? property.toString() : `'${property}'`;
}

/** A handler whose traps refuse every write (assignment, defineProperty, delete, prototype change) and `mutators`. */
function makeHandler(key: string, mutators: readonly string[] = []): ProxyHandler<object> {
  const handler: ProxyHandler<object> = {
    set: (_target, property) => refuse(`assigning ${describe(property)}`, key),
    defineProperty: (_target, property) => refuse(`defining ${describe(property)}`, key),
    deleteProperty: (_target, property) => refuse(`deleting ${describe(property)}`, key),
    setPrototypeOf: () => refuse('changing the prototype', key),
  };
  if (mutators.length > 0) {
    const names = new Set(mutators);
    handler.get = (object, property, receiver) => {
      if (typeof property === 'string' && names.has(property) && !(property in object)) {
        return (first?: unknown) => refuse(`${property}()`, typeof first === 'string' ? first : undefined);
      }
      return Reflect.get(object, property, receiver);
    };
  }
  return handler;
}

const VIEW_HANDLER = makeHandler('session', SESSION_MUTATORS);
const DATA_HANDLER = makeHandler('session data', DATA_MUTATORS);
const NO_FLASHES = guard(Object.freeze({ get: () => undefined, keys: (): string[] => [] }), makeHandler('flash', FLASH_MUTATORS));

// One handler per session key (an app has few), so copies cost no closures of their own.
const handlers = new Map<string, ProxyHandler<object>>();
const MAX_CACHED_HANDLERS = 1000;

function handlerFor(key: string): ProxyHandler<object> {
  let handler = handlers.get(key);
  if (handler === undefined) {
    handler = makeHandler(key);
    if (handlers.size < MAX_CACHED_HANDLERS) handlers.set(key, handler);
  }
  return handler;
}

function guard<T extends object>(target: T, handler: ProxyHandler<object>): T {
  return new Proxy(target, handler as ProxyHandler<T>);
}

/** Like guard, for built-ins whose methods need their real `this` (internal slots). */
function guardBuiltIn<T extends object>(target: T, key: string, mutators: ReadonlySet<string>): T {
  return new Proxy(target, {
    set: (_target, property) => refuse(`assigning ${describe(property)}`, key),
    defineProperty: (_target, property) => refuse(`defining ${describe(property)}`, key),
    deleteProperty: (_target, property) => refuse(`deleting ${describe(property)}`, key),
    setPrototypeOf: () => refuse('changing the prototype', key),
    get: (object, property) => {
      if (typeof property === 'string' && mutators.has(property)) return () => refuse(`${property}()`, key);
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

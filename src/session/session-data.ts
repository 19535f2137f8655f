/**
 * @module The mutable data of one session. No I/O: it keeps the bytes last known to be stored,
 * the values handed out, and works out which keys changed by comparing encoded bytes (a nested
 * mutation of an object got with `get` counts; no proxies for users to defeat).
 */
import { debuglog } from 'node:util';
import { SessionKeyError } from '../errors.js';
import type { ValueCodec } from './value-codec.js';

const trace = debuglog('keepsake');

/**
 * The shape of an app's session, declared once by declaration merging:
 * @example
 * declare module 'keepsake' {
 *   interface SessionValues { name: string; basket: Item[] }
 * }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionValues {}

/** A key of the session: the declared ones, or any string while none are declared. */
export type SessionKey = [keyof SessionValues] extends [never] ? string : Extract<keyof SessionValues, string>;
/** The type stored under `K`. */
export type SessionValue<K extends string> = K extends keyof SessionValues ? SessionValues[K] : unknown;

/** What a persist must write: changed keys' bytes, removed keys, and whether all keys go first. */
export interface SessionChanges {
  readonly sets: ReadonlyMap<string, Buffer>;
  readonly deletes: readonly string[];
  readonly cleared: boolean;
}

/** Performs an atomic read-modify-write of one key in the store (provided by the manager). */
export type KeyUpdater = (key: string, fn: (current: unknown) => unknown) => Promise<unknown>;

const MAX_KEY_LENGTH = 200;

/**
 * The values of one session, typed by `SessionValues`. Reads and writes are in memory and stored
 * by the next persist, except `update`, which is applied to Redis at once.
 * @example
 * session.data.put('name', 'Ada');
 * session.data.get('name');        // 'Ada'
 * const basket = await session.data.update('basket', (items = []) => [...items, item]);
 */
export class SessionData {
  readonly #codec: ValueCodec;
  readonly #updater: KeyUpdater;
  /** Bytes known to be in the store, per key (after a clear(): still the store's, until persist). */
  #stored: Map<string, Buffer>;
  /** Values decoded or assigned in this request. */
  readonly #values = new Map<string, unknown>();
  /** Keys whose value may differ from #stored: put, or an object handed out by get(). */
  readonly #maybeChanged = new Set<string>();
  readonly #deleted = new Set<string>();
  #cleared = false;

  readonly #onUndecodable: ((key: string, error: unknown) => void) | undefined;

  /** @param onUndecodable told about a key whose stored bytes cannot be decoded (the manager logs it). */
  constructor(codec: ValueCodec, stored: Map<string, Buffer>, updater: KeyUpdater, onUndecodable?: (key: string, error: unknown) => void) {
    this.#codec = codec;
    this.#stored = stored;
    this.#updater = updater;
    this.#onUndecodable = onUndecodable;
  }

  /** The value of `key`, or undefined. Objects are live: mutate them and the change is persisted. */
  get<K extends SessionKey>(key: K): SessionValue<K> | undefined {
    if (this.#values.has(key)) return this.#values.get(key) as SessionValue<K>;
    if (this.#cleared || this.#deleted.has(key)) return undefined;
    const bytes = this.#stored.get(key);
    if (bytes === undefined) return undefined;
    const value = this.#decode(key, bytes);
    if (value === undefined) return undefined;
    this.#values.set(key, value);
    if (value !== null && typeof value === 'object') this.#maybeChanged.add(key);
    return value as SessionValue<K>;
  }

  /** Sets `key` (last writer wins against concurrent requests). `undefined` deletes it. */
  put<K extends SessionKey>(key: K, value: SessionValue<K>): this {
    checkKey(key);
    if (value === undefined) return this.delete(key);
    this.#codec.encode(key, value); // refuse what cannot be stored now, where the caller sees it
    this.#values.set(key, value);
    this.#maybeChanged.add(key);
    this.#deleted.delete(key);
    return this;
  }

  /** True when `key` has a value. */
  has(key: SessionKey): boolean {
    if (this.#values.has(key)) return true;
    return !this.#cleared && !this.#deleted.has(key) && this.#stored.has(key);
  }

  /** Removes `key`; removing a key that is not there is not an error. */
  delete(key: SessionKey): this {
    checkKey(key);
    this.#values.delete(key);
    this.#maybeChanged.delete(key);
    this.#deleted.add(key);
    return this;
  }

  /** Removes every key (metadata such as the user binding stays). */
  clear(): this {
    this.#values.clear();
    this.#maybeChanged.clear();
    this.#deleted.clear();
    this.#cleared = true;
    return this;
  }

  /**
   * Atomic read-modify-write of one key, applied to the store at once: `fn` gets the current
   * value and returns the new one (undefined deletes). If another request changed the key
   * meanwhile, `fn` runs again on the fresh value, so concurrent updates all survive. After this
   * request's own put/delete/clear/mutation of `key`, `fn` extends that pending change instead
   * (written by the persist, last writer wins). See docs/concurrency.md.
   * @returns the value stored.
   * @example const items = await session.data.update('basket', (items = []) => [...items, item]);
   */
  update<K extends SessionKey>(key: K, fn: (current: SessionValue<K> | undefined) => SessionValue<K> | undefined): Promise<SessionValue<K> | undefined> {
    checkKey(key);
    if (this.#pendingChange(key)) return this.#updateLocally(key, fn);
    return this.#updater(key, fn as (current: unknown) => unknown) as Promise<SessionValue<K> | undefined>;
  }

  /**
   * This request already changed `key` (put, delete, clear, nested mutation) and has not persisted
   * it: `fn` extends that change, which stays last-writer-wins and is written with the others.
   */
  async #updateLocally<K extends SessionKey>(key: K, fn: (current: SessionValue<K> | undefined) => SessionValue<K> | undefined): Promise<SessionValue<K> | undefined> {
    const local = this.#values.get(key);
    // fn gets a copy, as on the store path: a throwing fn leaves the pending value untouched.
    const current = local === undefined ? undefined : this.#codec.decode(this.#codec.encode(key, local));
    this.put(key, (await fn(current as SessionValue<K> | undefined)) as SessionValue<K>);
    return this.get(key);
  }

  /** True when the persist would write or remove `key` (compares bytes for values handed out). */
  #pendingChange(key: string): boolean {
    if (this.#cleared || this.#deleted.has(key)) return true;
    if (!this.#maybeChanged.has(key)) return false;
    return !equalBytes(this.#stored.get(key), this.#codec.encode(key, this.#values.get(key)));
  }

  /** Every key that has a value. */
  keys(): string[] {
    const keys = new Set(this.#cleared ? [] : [...this.#stored.keys()].filter((key) => !this.#deleted.has(key)));
    for (const key of this.#values.keys()) keys.add(key);
    return [...keys].filter((key) => this.get(key as SessionKey) !== undefined);
  }

  /** A plain object of every key and value (decodes everything). */
  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.keys().map((key) => [key, this.get(key as SessionKey)]));
  }

  /**
   * @internal The stored session ended meanwhile (a login found it gone): the values it held are
   * gone too. This request's own puts, deletes and the objects it was handed keep their changes.
   */
  forgetStored(): void {
    for (const key of [...this.#values.keys()]) if (!this.#maybeChanged.has(key)) this.#values.delete(key);
    this.#stored = new Map();
    this.#deleted.clear();
  }

  /** @internal What a persist must write now; values are re-encoded and compared with the stored bytes. */
  changes(): SessionChanges {
    const sets = new Map<string, Buffer>();
    for (const key of this.#maybeChanged) {
      const bytes = this.#codec.encode(key, this.#values.get(key));
      if (this.#cleared || !equalBytes(this.#stored.get(key), bytes)) sets.set(key, bytes);
    }
    const deletes = this.#cleared ? [] : [...this.#deleted].filter((key) => this.#stored.has(key));
    return { sets, deletes, cleared: this.#cleared };
  }

  /** @internal False when a persist certainly has nothing to write (no put, delete, clear or object handed out). */
  get mayHaveChanged(): boolean {
    return this.#cleared || this.#maybeChanged.size > 0 || this.#deleted.size > 0;
  }

  /** @internal True when a persist would write nothing. */
  get changed(): boolean {
    const changes = this.changes();
    return changes.cleared || changes.sets.size > 0 || changes.deletes.length > 0;
  }

  /** @internal Records that `changes` are now in the store. */
  commit(changes: SessionChanges): void {
    if (changes.cleared) this.#stored = new Map();
    for (const [key, bytes] of changes.sets) this.#stored.set(key, bytes);
    for (const key of changes.deletes) this.#stored.delete(key);
    this.#cleared = false;
    this.#deleted.clear();
    // Objects handed out stay watched: they can still be mutated before the next persist.
    for (const key of [...this.#maybeChanged]) {
      const value = this.#values.get(key);
      if (value === null || typeof value !== 'object') this.#maybeChanged.delete(key);
    }
  }

  /** @internal The stored bytes of `key` (what an update compares against). */
  storedBytes(key: string): Buffer | undefined {
    return this.#cleared ? undefined : this.#stored.get(key);
  }

  /** @internal Records the result of an update that was applied to the store. */
  applyUpdate(key: string, bytes: Buffer | undefined, value: unknown): void {
    if (this.#cleared) return; // a clear() made meanwhile removes it again at persist
    this.#deleted.delete(key);
    if (bytes === undefined) {
      this.#stored.delete(key);
      this.#values.delete(key);
      this.#maybeChanged.delete(key);
      return;
    }
    this.#stored.set(key, bytes);
    this.#values.set(key, value);
    if (value !== null && typeof value === 'object') this.#maybeChanged.add(key);
    else this.#maybeChanged.delete(key);
  }

  /** @internal Decodes one key's bytes; corrupt bytes are logged and the key treated as absent. */
  #decode(key: string, bytes: Buffer): unknown {
    try {
      return this.#codec.decode(bytes);
    } catch (error) {
      trace('session key %s holds undecodable bytes, treated as absent: %s', key, (error as Error).message);
      this.#onUndecodable?.(key, error);
      this.#stored.delete(key);
      return undefined;
    }
  }
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new SessionKeyError(key, 'expected a non-empty string');
  if (key.length > MAX_KEY_LENGTH) throw new SessionKeyError(key, `expected at most ${MAX_KEY_LENGTH} characters`);
}

function equalBytes(a: Buffer | undefined, b: Buffer): boolean {
  return a !== undefined && a.length === b.length && a.equals(b);
}

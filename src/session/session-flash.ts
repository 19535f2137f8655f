/**
 * @module Flash values: set by one request, readable by the next request that starts the
 * session, and gone after it (what express-flash and Adonis users expect for a message shown
 * after a redirect). No I/O: stored as `f:<key>` fields of the session hash by the manager's
 * persist, and deleted by the persist of the request that received them, read or not.
 */
import { SessionKeyError } from '../errors.js';
import { ValueCodec } from './value-codec.js';

/** What a persist must write for flash values: new ones to set, received ones to delete. */
export interface FlashChanges {
  readonly sets: ReadonlyMap<string, Buffer>;
  readonly deletes: readonly string[];
}

const MAX_KEY_LENGTH = 200;

export class SessionFlash {
  readonly #codec: ValueCodec;
  /** Values the previous request left, still undecoded. */
  readonly #incoming: Map<string, Buffer>;
  /** Values decoded by get() (made on first use: most requests see no flash at all). */
  #decoded: Map<string, unknown> | null = null;
  /** Received keys still to delete from the store. */
  readonly #unconsumed: Set<string> | null;
  /** Values for the next request, encoded when set (a value that cannot be stored fails there). */
  readonly #outgoing = new Map<string, Buffer>();

  readonly #onUndecodable: ((key: string, error: unknown) => void) | undefined;

  constructor(codec: ValueCodec = new ValueCodec(), incoming: Map<string, Buffer> = new Map(), onUndecodable?: (key: string, error: unknown) => void) {
    this.#codec = codec;
    this.#incoming = incoming;
    this.#unconsumed = incoming.size > 0 ? new Set(incoming.keys()) : null;
    this.#onUndecodable = onUndecodable;
  }

  /** Leaves `value` under `key` for the next request. */
  set(key: string, value: unknown): void {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new SessionKeyError(key, `expected a non-empty string of at most ${MAX_KEY_LENGTH} characters`);
    }
    if (value === undefined) {
      this.#outgoing.delete(key);
      return;
    }
    this.#outgoing.set(key, this.#codec.encode(key, value));
  }

  /** The value the previous request left under `key`, or undefined. */
  get(key: string): unknown {
    if (this.#decoded?.has(key)) return this.#decoded.get(key);
    const bytes = this.#incoming.get(key);
    if (bytes === undefined) return undefined;
    let value: unknown;
    try {
      value = this.#codec.decode(bytes);
    } catch (error) {
      this.#onUndecodable?.(key, error);
      value = undefined;
    }
    (this.#decoded ??= new Map()).set(key, value);
    return value;
  }

  /** Keys the previous request left. */
  keys(): string[] {
    return [...this.#incoming.keys()];
  }

  /** @internal What the next persist must write. */
  changes(): FlashChanges {
    const deletes = this.#unconsumed === null ? [] : [...this.#unconsumed].filter((key) => !this.#outgoing.has(key));
    return { sets: new Map(this.#outgoing), deletes };
  }

  /** @internal True when a persist has flash fields to write or delete. */
  get changed(): boolean {
    return this.#outgoing.size > 0 || (this.#unconsumed !== null && this.#unconsumed.size > 0);
  }

  /** @internal The changes are stored: received values stay readable for the rest of this request. */
  commit(changes: FlashChanges): void {
    for (const key of changes.deletes) this.#unconsumed?.delete(key);
    for (const [key, bytes] of changes.sets) {
      this.#unconsumed?.delete(key);
      // A value flashed again while the write was on its way is still to be written.
      if (this.#outgoing.get(key) === bytes) this.#outgoing.delete(key);
    }
  }
}

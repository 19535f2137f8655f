/**
 * @module This node's copies of large sessions, so loading one costs a version check instead of
 * its whole bytes (a 100 KB session read on every request costs Redis and Node far more than the
 * request itself).
 *
 * A copy is the d: and f: fields of a session at one version: the operation id of the write that
 * made it (the newest id in `m:v`, set atomically by every write). Operation ids never repeat, not
 * even after a failover or restart that lost the last writes (a plain counter would be issued
 * again there, and a copy of a lost write would pass for current). The store keeps a copy current
 * with this node's own writes (each write's reply gives the version it replaced: the copy's means
 * nothing else came between) and drops it on anything else. Writes made behind keepsake's write
 * function (another tool writing d: fields directly) are not seen: such a writer must set a new
 * version in `m:v` as well.
 */

/** The d: and f: fields of a session at `version`, without their prefixes. */
export interface CachedSession {
  version: string;
  readonly data: Map<string, Buffer>;
  readonly flash: Map<string, Buffer>;
  bytes: number;
}

/** Most bytes of session values one node keeps copies of (least recently used go first). */
export const SESSION_CACHE_BYTES = 32 * 1024 * 1024;

export class SessionCache {
  readonly #entries = new Map<string, CachedSession>();
  readonly #maxBytes: number;
  #bytes = 0;
  /** Loads of a large session served from (hits) or missing (misses) this node's copy. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(maxBytes = SESSION_CACHE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** The copy of session `id` if it is at `version` (and marks it recently used); else drops it. */
  take(id: string, version: string): CachedSession | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined || entry.version !== version) this.stats.misses++;
    else this.stats.hits++;
    if (entry === undefined) return undefined;
    this.#entries.delete(id);
    if (entry.version !== version) {
      this.#bytes -= entry.bytes;
      return undefined;
    }
    this.#entries.set(id, entry);
    return entry;
  }

  /** Keeps a copy of session `id` as read at `version` (values are copied off shared buffers). */
  keep(id: string, version: string, data: ReadonlyMap<string, Buffer>, flash: ReadonlyMap<string, Buffer>): void {
    this.drop(id);
    const entry: CachedSession = { version, data: new Map(), flash: new Map(), bytes: 0 };
    for (const [key, bytes] of data) entry.data.set(key, own(bytes));
    for (const [key, bytes] of flash) entry.flash.set(key, own(bytes));
    entry.bytes = sizeOf(entry);
    if (entry.bytes > this.#maxBytes / 4) return;
    this.#entries.set(id, entry);
    this.#bytes += entry.bytes;
    this.#evict();
  }

  /**
   * This node's write took session `id` from version `previous` to `version`: the copy follows if
   * it was at `previous` (nothing else wrote in between), otherwise it is dropped.
   */
  written(id: string, previous: string | undefined, version: string, apply: (entry: CachedSession) => void): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    if (entry.version !== previous) {
      this.drop(id);
      return;
    }
    this.#bytes -= entry.bytes;
    apply(entry);
    entry.version = version;
    entry.bytes = sizeOf(entry);
    this.#bytes += entry.bytes;
    this.#evict();
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  drop(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    this.#bytes -= entry.bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  #evict(): void {
    for (const [id, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#entries.delete(id);
      this.#bytes -= entry.bytes;
    }
  }
}

/** A Buffer of its own: values read from Redis may be views into a much larger socket chunk. */
export function own(bytes: Buffer): Buffer {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length ? bytes : Buffer.from(bytes);
}

function sizeOf(entry: CachedSession): number {
  let bytes = 0;
  for (const [key, value] of entry.data) bytes += key.length + value.length;
  for (const [key, value] of entry.flash) bytes += key.length + value.length;
  return bytes;
}

/**
 * @module Session values to bytes and back with msgpackr (the igbinary of Node).
 * Deterministic and self-contained (no records, no shared structures): equal values give equal
 * bytes, which is how changes are detected, and any node or the CLI can decode any field.
 */
import { C1, Packr } from 'msgpackr';
import { SessionValueError } from '../errors.js';

export class ValueCodec {
  readonly #packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'bigint' });

  /**
   * @throws SessionValueError naming `key` when the value would not come back as it went in:
   *   functions, symbols, Maps, Sets, class instances.
   */
  encode(key: string, value: unknown): Buffer {
    const unsupported = findUnsupported(value, 0);
    if (unsupported !== undefined) throw new SessionValueError(key, unsupported);
    try {
      return this.#packr.pack(value);
    } catch (error) {
      throw new SessionValueError(key, value, { cause: error });
    }
  }

  /** Decodes bytes written by `encode`; throws on corrupt bytes (the caller decides what that means). */
  decode(bytes: Uint8Array): unknown {
    const value = this.#packr.unpack(bytes);
    // 0xC1 is "never used" in MessagePack: msgpackr hands back a marker instead of failing.
    if (value === C1) throw new Error('invalid MessagePack: 0xC1');
    return value;
  }
}

// msgpackr silently turns functions into undefined, Maps into objects, Sets into arrays and class
// instances into plain objects; refuse them instead of handing back something else later.
function findUnsupported(value: unknown, depth: number): unknown {
  if (typeof value === 'function' || typeof value === 'symbol') return value;
  if (value === null || typeof value !== 'object' || depth > 32 || ArrayBuffer.isView(value) || value instanceof Date) return undefined;
  if (!Array.isArray(value)) {
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) return value;
  }
  for (const inner of Array.isArray(value) ? value : Object.values(value)) {
    const found = findUnsupported(inner, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

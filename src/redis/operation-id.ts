/**
 * @module Operation ids: one per keepsake write, so the write function can tell a command ioredis
 * sends again after a reconnect (its reply was lost) from a new write. A random part drawn once
 * per process and a counter: unique for ever without a random draw per write, and short (~10
 * characters), since the session hash keeps the last ones in 64 bytes.
 */
import { randomBytes } from 'node:crypto';

export class OperationIds {
  readonly #origin = randomBytes(6).toString('base64url').slice(0, 7);
  #count = 0;

  /** A new id, never returned before by any process (base64url characters only). */
  next(): string {
    return this.#origin + (this.#count++).toString(36);
  }
}

/**
 * @module Session ids: 256 random bits, base64url (43 characters).
 */
import { randomBytes } from 'node:crypto';
import { crc16, crc16Step, prefixPinsSlot, SLOT_COUNT } from '../redis/cluster-slot.js';

/** Characters in an id (the write function derives the id from the end of the key). */
export const ID_LENGTH = 43;

const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

const BASE64URL = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');

/**
 * A new id whose key `prefix + id` lies in Redis Cluster hash slot `slot`, so a session can be
 * renamed to it in one atomic step (login on a cluster; RENAME needs both keys in one slot).
 * 30 random bytes give the first 40 characters (240 random bits); the last 3 are searched until
 * the slot matches, resuming the CRC after the random part: ~16k table steps, some tens of µs.
 */
export function newSessionIdInSlot(prefix: string, slot: number): string {
  if (prefixPinsSlot(prefix)) return newSessionId(); // every key of this prefix is in one slot already
  for (;;) {
    const head = randomBytes(30).toString('base64url');
    const state = crc16(Buffer.from(prefix + head));
    for (let a = 0; a < 64; a++) {
      const afterA = crc16Step(state, BASE64URL[a]!);
      for (let b = 0; b < 64; b++) {
        const afterB = crc16Step(afterA, BASE64URL[b]!);
        for (let c = 0; c < 64; c++) {
          if (crc16Step(afterB, BASE64URL[c]!) % SLOT_COUNT === slot) {
            return head + String.fromCharCode(BASE64URL[a]!, BASE64URL[b]!, BASE64URL[c]!);
          }
        }
      }
    }
    // No match among 64^3 endings (probability about e^-16): draw new random bytes.
  }
}

/** True for strings shaped like an id keepsake makes; anything else is never looked up. */
export function isSessionId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** The random tag of an anonymous user, fixed when the session is created (`anon-<tag>`). */
export function newAnonymousTag(): string {
  return randomBytes(9).toString('base64url');
}

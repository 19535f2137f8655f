/**
 * @module Session ids: 256 random bits, base64url (43 characters).
 */
import { randomBytes } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/** True for strings shaped like an id keepsake makes; anything else is never looked up. */
export function isSessionId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** The random tag of an anonymous user, fixed when the session is created (`anon-<tag>`). */
export function newAnonymousTag(): string {
  return randomBytes(9).toString('base64url');
}

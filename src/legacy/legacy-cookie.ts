/**
 * @module The cookie of @fastify/session or express-session: `<id>.<signature>` (@fastify/session)
 * or `s:<id>.<signature>` (express-session), URL-encoded, signed by cookie-signature with any of
 * the old library's secrets.
 */
import { serialize } from 'cookie';
import { unsign } from 'cookie-signature';
import type { LegacySessionsConfig } from '../config/schema.js';

/** Longest cookie value worth verifying (both libraries' ids are 32 characters). */
const MAX_VALUE_LENGTH = 512;

/** What an id may be: printable, no spaces, no glob characters (it becomes part of Redis keys and SCAN patterns). */
const LEGACY_ID = /^[^\s*?[\]\\]{1,256}$/;

export class LegacyCookie {
  readonly #config: LegacySessionsConfig;
  readonly #prefix: string;
  readonly #secure: boolean;

  constructor(config: LegacySessionsConfig, secure: boolean) {
    this.#config = config;
    this.#prefix = `${config.cookie_name}=`;
    this.#secure = secure;
  }

  /**
   * The legacy session id a Cookie header names, if its signature verifies with one of the
   * legacy secrets; null for a missing, malformed or tampered cookie (that is "no legacy session").
   */
  read(header: string | undefined): string | null {
    if (header === undefined || !header.includes(this.#prefix)) return null;
    for (const part of header.split(';')) {
      const pair = part.trim();
      if (!pair.startsWith(this.#prefix)) continue;
      const id = this.#verify(pair.slice(this.#prefix.length));
      if (id !== null) return id;
    }
    return null;
  }

  /** The Set-Cookie value that removes the legacy cookie (same name, path and domain, Max-Age=0). */
  clear(): string {
    return serialize(this.#config.cookie_name, '', { maxAge: 0, path: this.#config.cookie_path, domain: this.#config.cookie_domain, httpOnly: true, secure: this.#secure, sameSite: 'lax' });
  }

  #verify(raw: string): string | null {
    if (raw.length === 0 || raw.length > MAX_VALUE_LENGTH) return null;
    let value: string;
    try {
      value = decodeURIComponent(raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw);
    } catch {
      return null;
    }
    // express-session marks signed values with `s:`; @fastify/session does not.
    if (value.startsWith('s:')) value = value.slice(2);
    for (const secret of this.#config.secrets) {
      const id = unsign(value, secret);
      if (id !== false && LEGACY_ID.test(id)) return id;
    }
    return null;
  }
}

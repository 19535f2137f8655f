/**
 * @module The session cookie: `<id>.<signature>` as cookie-signature's `sign(id, secret)` makes it,
 * URL-encoded. The first secret signs, every secret verifies (rotation).
 */
import { sign, unsign } from 'cookie-signature';
import { serialize } from 'cookie';
import type { SessionConfig } from '../config/schema.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import { isSessionId } from './session-id.js';

/** Longest cookie value worth verifying: an id, a dot, a signature, URL-encoded. */
const MAX_VALUE_LENGTH = 160;

/** How many verified cookie values are remembered (~200 bytes each); the oldest goes first. */
const VERIFIED_VALUES = 10_000;

export interface VerifiedCookie {
  readonly id: string;
  /** False when an older secret signed it: the reply re-signs it with the newest. */
  readonly signedWithCurrentSecret: boolean;
}

export class CookieCodec {
  readonly #session: SessionConfig;
  readonly #secure: boolean;
  readonly #prefix: string;
  /**
   * Cookie values whose signature verified, and what they verified to. A visitor sends the same
   * value on every request, so its HMAC is computed once, not on every request (the largest
   * share of keepsake's own CPU per request in the benchmark). Only values that verified enter,
   * and a lookup matches a whole value exactly, so a forged value learns nothing from it.
   */
  readonly #verified = new Map<string, VerifiedCookie>();

  readonly #logger: KeepsakeLogger;

  constructor({ config, logger }: { config: { session: SessionConfig }; logger?: KeepsakeLogger }) {
    this.#session = config.session;
    this.#logger = logger ?? consoleLogger;
    this.#secure = config.session.cookie_secure === 'auto' ? process.env.NODE_ENV === 'production' : config.session.cookie_secure;
    this.#prefix = `${config.session.cookie_name}=`;
  }

  get name(): string {
    return this.#session.cookie_name;
  }

  /**
   * Finds the session cookie in a Cookie header and verifies it. Only this one cookie is parsed.
   * A browser sends every cookie of the name it holds (one a sibling subdomain set on the parent
   * domain, one of a more specific Path), in an order the server cannot trust. When the ones that
   * verify name different sessions, none is used (docs/security.md, "Several cookies of the
   * name"): picking one would let a sibling site pin a visitor to a session it chose.
   * @returns null for a missing, malformed, oversized or tampered cookie, or an ambiguous
   *   header: that is "no session".
   */
  read(header: string | undefined): VerifiedCookie | null {
    if (header === undefined || !header.includes(this.#prefix)) return null;
    let found: VerifiedCookie | null = null;
    for (const part of header.split(';')) {
      const pair = part.trim();
      if (!pair.startsWith(this.#prefix)) continue;
      const verified = this.#verify(pair.slice(this.#prefix.length));
      if (verified === null) continue;
      if (found === null || (found.id === verified.id && !found.signedWithCurrentSecret)) found = verified;
      else if (found.id !== verified.id) {
        this.#logger.debug({ cookie: this.#session.cookie_name }, 'several session cookies name different sessions (one set by another subdomain or path?); treated as no session');
        return null;
      }
    }
    return found;
  }

  /**
   * The Set-Cookie value naming session `id`, signed with the newest secret. Max-Age is
   * cookie_lifespan (or `lifespan`, the seconds a login chose), or `maxAgeSeconds` when shorter
   * (a session near its absolute end).
   */
  serialize(id: string, maxAgeSeconds?: number, lifespan: number = this.#session.cookie_lifespan): string {
    const maxAge = maxAgeSeconds === undefined ? lifespan : Math.max(1, Math.min(lifespan, Math.ceil(maxAgeSeconds)));
    return this.#setCookie(sign(id, this.#session.secrets[0]!), maxAge);
  }

  /** The Set-Cookie value that removes the cookie (logout). */
  clear(): string {
    return this.#setCookie('', 0);
  }

  #verify(raw: string): VerifiedCookie | null {
    if (raw.length === 0 || raw.length > MAX_VALUE_LENGTH) return null;
    const known = this.#verified.get(raw);
    if (known !== undefined) return known;
    const verified = this.#check(raw);
    if (verified !== null) {
      if (this.#verified.size >= VERIFIED_VALUES) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(raw, verified);
    }
    return verified;
  }

  /** Decodes a cookie value and checks its signature against every secret. */
  #check(raw: string): VerifiedCookie | null {
    let value: string;
    try {
      value = decodeURIComponent(raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw);
    } catch {
      return null;
    }
    const secrets = this.#session.secrets;
    for (let index = 0; index < secrets.length; index++) {
      const id = unsign(value, secrets[index]!);
      if (id !== false && isSessionId(id)) return { id, signedWithCurrentSecret: index === 0 };
    }
    return null;
  }

  #setCookie(value: string, maxAge: number): string {
    return serialize(this.#session.cookie_name, value, {
      maxAge,
      path: this.#session.cookie_path,
      domain: this.#session.cookie_domain,
      httpOnly: true,
      secure: this.#secure,
      sameSite: this.#session.cookie_same_site,
    });
  }
}

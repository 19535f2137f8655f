/**
 * @module What a session records about the device it runs on: fields in the session hash's `m:`
 * namespace (so they are gone with the session), written by the login's own write and, at most
 * once a minute, by the write that refreshes "last seen".
 */
import { randomBytes } from 'node:crypto';
import Bowser from 'bowser';

/** Device fields of a session hash (beside m:c created, m:u user). */
export const DEVICE_FIELD = {
  /** Opaque random handle of the device, drawn at login: names it to the user, reveals nothing of the id. */
  handle: 'm:h',
  /** The User-Agent the session logged in with (at most USER_AGENT_MAX characters). */
  userAgent: 'm:ua',
  /** The client IP at login (fastify's request.ip: honours server.trust_proxy). */
  ip: 'm:ip',
  /** Last seen (ms since epoch): set at login, moved at most once per LAST_SEEN_EVERY_MS. */
  lastSeen: 'm:ls',
} as const;

/** Longest User-Agent kept; a longer one is cut (they are sent by the client, any length). */
export const USER_AGENT_MAX = 256;

/** "Last seen" moves at most this often: a read-only route within it writes nothing. */
export const LAST_SEEN_EVERY_MS = 60_000;

/** What a login request tells about its device (a FastifyRequest has both). */
export interface DeviceRequest {
  readonly headers: { readonly 'user-agent'?: string | undefined };
  readonly ip?: string | undefined;
}

/** The device fields a login writes into the session hash. */
export function loginDeviceFields(request: DeviceRequest, now = Date.now()): Map<string, string> {
  const fields = new Map<string, string>([
    [DEVICE_FIELD.handle, newDeviceHandle()],
    [DEVICE_FIELD.lastSeen, String(now)],
  ]);
  const userAgent = request.headers['user-agent'];
  if (typeof userAgent === 'string' && userAgent !== '') fields.set(DEVICE_FIELD.userAgent, userAgent.slice(0, USER_AGENT_MAX));
  if (typeof request.ip === 'string' && request.ip !== '') fields.set(DEVICE_FIELD.ip, request.ip);
  return fields;
}

/** 128 random bits, URL-safe: unrelated to the session id, so it reveals nothing of it. */
export function newDeviceHandle(): string {
  return randomBytes(16).toString('base64url');
}

/** True when a session last seen at `lastSeenAt` should record this visit (one write a minute at most). */
export function lastSeenStale(lastSeenAt: number | undefined, now = Date.now()): boolean {
  return lastSeenAt !== undefined && now - lastSeenAt >= LAST_SEEN_EVERY_MS;
}

/**
 * Which sessions this node moved "last seen" for lately: concurrent requests that all read a stale
 * value (a page's parallel API calls) write it once, not once each. Bounded: oldest entries go.
 */
export class LastSeenThrottle {
  readonly #claimed = new Map<string, number>();
  constructor(private readonly max = 10_000) {}

  /** True for the first caller per session id and minute on this node. */
  claim(id: string, now = Date.now()): boolean {
    const last = this.#claimed.get(id);
    if (last !== undefined && now - last < LAST_SEEN_EVERY_MS) return false;
    this.#claimed.delete(id);
    if (this.#claimed.size >= this.max) this.#claimed.delete(this.#claimed.keys().next().value!);
    this.#claimed.set(id, now);
    return true;
  }
}

type BrowserAndOs = { readonly browser: string | null; readonly os: string | null };

/** Parsed User-Agents: a listing sees the same few again and again, and a parse costs ~40 µs. */
const parsedAgents = new Map<string, BrowserAndOs>();
const PARSED_AGENTS_MAX = 1000;
const NONE: BrowserAndOs = { browser: null, os: null };

/** Browser and OS names read from a User-Agent by bowser ("Chrome", "Firefox", "Linux", …), or null. */
export function browserAndOs(userAgent: string | null): BrowserAndOs {
  if (userAgent === null || userAgent === '') return NONE;
  let names = parsedAgents.get(userAgent);
  if (names === undefined) {
    try {
      const parsed = Bowser.parse(userAgent);
      names = { browser: parsed.browser.name || null, os: parsed.os.name || null };
    } catch {
      names = NONE;
    }
    if (parsedAgents.size >= PARSED_AGENTS_MAX) parsedAgents.delete(parsedAgents.keys().next().value!);
    parsedAgents.set(userAgent, names);
  }
  return names;
}

/**
 * @module A legacy session's JSON (connect-redis writes one blob per session) as keepsake data:
 * every top-level field but `cookie` becomes a data key of the same name.
 */
import type { SessionData } from '../session/session-data.js';
import type { ValueCodec } from '../session/value-codec.js';

/** What a legacy session holds for keepsake: its fields, and the user `user_field` names. */
export interface LegacyContent {
  readonly values: ReadonlyArray<readonly [string, unknown]>;
  readonly userId: string | null;
}

/**
 * Parses connect-redis's JSON. Null when it is not a JSON object (not a session of either library).
 * `cookie` is the library's own bookkeeping (maxAge, expires, path): keepsake has its own cookie.
 */
export function parseLegacySession(json: string, userField: string | undefined): LegacyContent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const record = parsed as Record<string, unknown>;
  const values = Object.entries(record).filter(([key]) => key !== 'cookie');
  const user = userField === undefined ? undefined : record[userField];
  const userId = typeof user === 'string' && user !== '' ? user : typeof user === 'number' && Number.isFinite(user) ? String(user) : null;
  return { values, userId };
}

/**
 * Puts each value into `data`; a value keepsake refuses (a key of more than 200 characters, a
 * value past max_session_bytes together with the others) is skipped and reported, never a 500.
 * @returns how many values were skipped.
 */
export function putLegacyValues(
  data: SessionData,
  content: LegacyContent,
  codec: ValueCodec,
  maxBytes: number,
  onSkip: (key: string, why: unknown) => void,
): number {
  let skipped = 0;
  let bytes = 0;
  for (const [key, value] of content.values) {
    try {
      const size = codec.encode(key, value).length;
      if (bytes + size > maxBytes) throw new Error(`${size} bytes would take the session past session.max_session_bytes = ${maxBytes}`);
      data.put(key as never, value as never);
      bytes += size;
    } catch (error) {
      skipped++;
      onSkip(key, error);
    }
  }
  return skipped;
}

/**
 * @module The session view every demo route and the WebSocket send: `{user, authenticated, name, basket}`.
 */
import type { ReadOnlySession, ReadOnlySessionData, Session } from '../src/index.js';
import type { Item } from './schemas.js';
import './session-values.js';

export interface SessionView {
  user: string;
  authenticated: boolean;
  name: string | null;
  basket: Item[];
}

/** The view of a request's session, or of the read-only one a WebSocket holds. */
export function sessionView(session: Session | ReadOnlySession): SessionView {
  // Both have these reads; the read-only one hands out frozen copies (JSON serializes them alike).
  const data = session.data as ReadOnlySessionData;
  return {
    user: session.user,
    authenticated: session.authenticated,
    name: data.get('name') ?? null,
    basket: (data.get('basket') ?? []) as Item[],
  };
}

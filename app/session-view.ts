/**
 * @module The session view every demo route and the WebSocket send: `{user, authenticated, name, basket}`.
 */
import type { Session } from '../src/index.js';
import type { Item } from './schemas.js';
import './session-values.js';

export interface SessionView {
  user: string;
  authenticated: boolean;
  name: string | null;
  basket: Item[];
}

export function sessionView(session: Session): SessionView {
  return {
    user: session.user,
    authenticated: session.authenticated,
    name: session.data.get('name') ?? null,
    basket: session.data.get('basket') ?? [],
  };
}

/**
 * @module The demo's `/ws` (DEMO-APP.md is the contract): the visitor's session, read-only and
 * live. `hello` on open, `session` whenever an HTTP request on any node changes it, `whoami` on
 * request; `rename` shows that a socket cannot write the session.
 */
import { BadMessageError, KeepsakeError, type Connection, type SessionData, type WebSocketController } from '../../src/index.js';
import { sessionView } from '../session-view.js';

type ClientMessage = { type?: unknown; name?: unknown };

export class LiveSocket implements WebSocketController {
  onOpen(conn: Connection): void {
    conn.send({ type: 'hello', ...sessionView(conn.session) });
  }

  onMessage(conn: Connection, message: string | Buffer): void {
    const parsed = parse(message);
    switch (parsed.type) {
      case 'whoami':
        conn.send({ type: 'whoami', ...sessionView(conn.session) });
        return;
      case 'rename':
        // The view's type has no put(); a cast gets past the compiler, not past the view: this
        // throws SessionReadOnlyError and the session stays as it is.
        (conn.session.data as unknown as SessionData).put('name', String(parsed.name));
        return;
      default:
        throw new BadMessageError(`unknown message type ${JSON.stringify(parsed.type) ?? 'undefined'}; expected whoami or rename`);
    }
  }

  onSessionChange(conn: Connection): void {
    conn.send({ type: 'session', ...sessionView(conn.session) });
  }

  onError(conn: Connection, error: Error): void {
    // Errors the client caused are answered and the socket stays open; anything else closes it.
    if (error instanceof KeepsakeError) conn.send({ type: 'error', code: error.code, message: error.message });
    else conn.close(1011, 'internal error');
  }
}

function parse(message: string | Buffer): ClientMessage {
  if (typeof message !== 'string') throw new BadMessageError('binary messages are not understood; send JSON text');
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    throw new BadMessageError('message is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadMessageError('message must be a JSON object with a "type"');
  return parsed as ClientMessage;
}

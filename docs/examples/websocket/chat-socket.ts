// src/chat-socket.ts: a WebSocket controller. It reads the session, never writes it.
import { BadMessageError, KeepsakeError, type Connection, type WebSocketController } from 'keepsake';

export class ChatSocket implements WebSocketController {
  onOpen(conn: Connection) {
    // conn.session: the handshake cookie's session, read-only and kept current.
    conn.send({ type: 'hello', user: conn.user, name: conn.session.data.get('name') ?? null });
  }

  onMessage(conn: Connection, message: string | Buffer) {
    if (message !== 'whoami') throw new BadMessageError('send "whoami"'); // goes to onError
    conn.send({ type: 'whoami', user: conn.user, authenticated: conn.session.authenticated });
  }

  onSessionChange(conn: Connection) {
    // An HTTP request on any node changed this session, or a login gave it a new id.
    conn.send({ type: 'session', user: conn.user, name: conn.session.data.get('name') ?? null });
  }

  onError(conn: Connection, error: Error) {
    if (error instanceof KeepsakeError) conn.send({ type: 'error', code: error.code, message: error.message });
    else conn.close(1011, 'internal error');
  }

  onClose(conn: Connection, code: number) {
    console.log(`socket ${conn.id} of ${conn.user} closed with ${code}`); // 4401: the session ended
  }
}

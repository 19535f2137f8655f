// A write through a socket's view compiles only through a cast, and throws at run time.
import type { Connection, SessionData, WebSocketController } from 'keepsake';

export class Renamer implements WebSocketController {
  onMessage(conn: Connection) {
    (conn.session.data as unknown as SessionData).put('name', 'x'); // throws SessionReadOnlyError
  }
}

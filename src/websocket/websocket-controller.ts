/**
 * @module What an app writes for a WebSocket route: a controller whose hooks get the Connection.
 * Register it in the container like an HTTP controller and hand it to the websocket plugin.
 */
import type { Connection } from './connection.js';

/**
 * The hooks of a WebSocket route; every one is optional. A hook may return a promise; an error
 * it throws (or rejects with) goes to `onError` (without one: logged, socket closed with 1011).
 * @example
 * export class Greeter implements WebSocketController {
 *   onOpen(conn: Connection) {
 *     conn.send(`Hello ${conn.session.data.get('name') ?? 'stranger'}`);
 *   }
 * }
 */
export interface WebSocketController {
  /** The socket is open; `conn.session` holds the handshake cookie's session. */
  onOpen?(conn: Connection): void | Promise<void>;
  /** A message arrived: a string for a text frame, a Buffer for a binary one. */
  onMessage?(conn: Connection, message: string | Buffer): void | Promise<void>;
  /** The socket closed (by either side); `conn` is no longer in the registry. */
  onClose?(conn: Connection, code: number, reason: string): void | Promise<void>;
  /**
   * A hook threw, or the socket failed (e.g. a message above `server.ws_max_message_bytes`,
   * after which the socket is already closing with 1009).
   */
  onError?(conn: Connection, error: Error): void | Promise<void>;
  /**
   * `conn.session` changed: an HTTP request on any app node persisted or regenerated (login) it.
   * Not called on destroy: the socket is closed with 4401 instead.
   */
  onSessionChange?(conn: Connection): void | Promise<void>;
}

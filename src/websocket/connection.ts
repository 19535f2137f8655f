/**
 * @module One open WebSocket as a controller sees it: the read-only live session, the user,
 * send and close.
 */
import type { WebSocket } from 'ws';
import type { ReadOnlySession } from './read-only-session.js';
import type { WebSocketController } from './websocket-controller.js';

/** Close code for a socket whose session ended (logout, CLI destroy): "unauthorized", as HTTP 401. */
export const CLOSE_SESSION_ENDED = 4401;
/** Close code when the server shuts down (RFC 6455 "going away"). */
export const CLOSE_GOING_AWAY = 1001;

// ws's readyState values (no runtime import of ws: it comes with @fastify/websocket).
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

let nextId = 0;

/**
 * One open WebSocket, as every hook of a WebSocketController receives it.
 * @example
 * onSessionChange(conn: Connection) {
 *   conn.send({ type: 'session', user: conn.user, name: conn.session.data.get('name') ?? null });
 * }
 */
export class Connection {
  /** A number unique to this connection on this node. */
  readonly id = ++nextId;
  /** The handshake cookie's session, read-only; it stays current while the socket is open. */
  readonly session: ReadOnlySession;
  /** @internal */
  readonly socket: WebSocket;
  /** @internal */
  readonly controller: WebSocketController;

  /** @internal */
  constructor(socket: WebSocket, session: ReadOnlySession, controller: WebSocketController) {
    this.socket = socket;
    this.session = session;
    this.controller = controller;
  }

  /** The session's user (login name, or `anon-…`). */
  get user(): string {
    return this.session.user;
  }

  /** True while messages can be sent. */
  get open(): boolean {
    return this.socket.readyState === OPEN;
  }

  /**
   * Sends `value`: a string as a text frame, a Buffer or typed array as a binary frame, anything
   * else as JSON text. Dropped (returns false) once the socket is closing.
   */
  send(value: unknown): boolean {
    if (!this.open) return false;
    if (typeof value === 'string' || Buffer.isBuffer(value) || value instanceof Uint8Array) this.socket.send(value);
    else this.socket.send(JSON.stringify(value));
    return true;
  }

  /** Starts the closing handshake with `code` (1000 or 3000–4999) and a short `reason`. */
  close(code = 1000, reason = ''): void {
    if (this.socket.readyState === CLOSING || this.socket.readyState === CLOSED) return;
    this.socket.close(code, reason);
  }

  /** @internal Cuts the TCP connection without a closing handshake (shutdown stragglers). */
  terminate(): void {
    this.socket.terminate();
  }
}

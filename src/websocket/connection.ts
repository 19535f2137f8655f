/**
 * @module One open WebSocket as a controller sees it: the read-only live session, the user,
 * send and close.
 */
import type { WebSocket } from 'ws';
import { WebSocketCloseError } from '../errors.js';
import type { ReadOnlySession } from './read-only-session.js';
import type { WebSocketController } from './websocket-controller.js';

/** Close code for a socket whose session ended (logout, CLI destroy): "unauthorized", as HTTP 401. */
export const CLOSE_SESSION_ENDED = 4401;
/** Close code when the server shuts down (RFC 6455 "going away"). */
export const CLOSE_GOING_AWAY = 1001;
/** Close code for one socket more than `ws_max_sockets_per_session` (RFC 6455 "policy violation"). */
export const CLOSE_TOO_MANY_SOCKETS = 1008;
/** Close code for a client that stopped reading: `ws_max_buffered_bytes` wait to be sent ("try again later"). */
export const CLOSE_TOO_SLOW = 1013;

/** Longest close reason: a close frame's payload is at most 125 bytes, two of them the code (RFC 6455 5.5). */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Throws WebSocketCloseError unless `code` and `reason` can go in a close frame: the codes ws
 * accepts (RFC 6455 7.4: 1000–1003, 1007–1014, 3000–4999) and a reason of at most 123 UTF-8
 * bytes. ws itself throws a plain error from close(), which inside a notice handler would be an
 * uncaught exception on every node.
 */
export function checkClose(code: unknown, reason: unknown): void {
  const valid =
    typeof code === 'number' && Number.isInteger(code) && ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999));
  if (!valid) throw new WebSocketCloseError(`WebSocket close code ${String(code).slice(0, 40)} is not allowed; expected 1000–1003, 1007–1014 or 3000–4999 (4401: session ended)`);
  if (typeof reason !== 'string') throw new WebSocketCloseError(`WebSocket close reason must be a string (got ${typeof reason})`);
  const bytes = Buffer.byteLength(reason);
  if (bytes > MAX_CLOSE_REASON_BYTES) {
    throw new WebSocketCloseError(`WebSocket close reason ${JSON.stringify(reason.slice(0, 40))}… has ${bytes} UTF-8 bytes, at most ${MAX_CLOSE_REASON_BYTES} allowed`);
  }
}

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

  /** Bytes that may wait to be sent before the socket is closed with 1013. */
  readonly #maxBufferedBytes: number;

  /** @internal */
  constructor(socket: WebSocket, session: ReadOnlySession, controller: WebSocketController, maxBufferedBytes = Infinity) {
    this.socket = socket;
    this.#maxBufferedBytes = maxBufferedBytes;
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
   * else as JSON text. Dropped (returns false) once the socket is closing. A client that stops
   * reading would make what waits to be sent grow without bound: once more than
   * `server.ws_max_buffered_bytes` wait, the socket is closed with 1013 and later sends are dropped.
   */
  send(value: unknown): boolean {
    if (!this.open) return false;
    if (typeof value === 'string' || Buffer.isBuffer(value) || value instanceof Uint8Array) this.socket.send(value);
    else this.socket.send(JSON.stringify(value));
    if (this.socket.bufferedAmount > this.#maxBufferedBytes) this.close(CLOSE_TOO_SLOW, 'client too slow: send buffer full');
    return true;
  }

  /**
   * Starts the closing handshake with `code` (1000–1003, 1007–1014 or 3000–4999) and a `reason`
   * of at most 123 UTF-8 bytes.
   * @throws WebSocketCloseError for a code or reason a close frame cannot carry (see checkClose).
   */
  close(code = 1000, reason = ''): void {
    checkClose(code, reason);
    if (this.socket.readyState === CLOSING || this.socket.readyState === CLOSED) return;
    this.socket.close(code, reason);
  }

  /** @internal Cuts the TCP connection without a closing handshake (shutdown stragglers). */
  terminate(): void {
    this.socket.terminate();
  }
}

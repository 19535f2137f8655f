/**
 * A real `ws` client for tests: keeps every message it receives, waits for the next one that
 * matches, and remembers how the socket closed.
 */
import WebSocket from 'ws';

export interface WsOpenOptions {
  /** The Cookie header of the handshake (a Client's `cookieHeader`). */
  cookie?: string | undefined;
  /** The Origin header of the handshake; none by default (a non-browser client). */
  origin?: string;
  /** How long the handshake may take. @default 5000 */
  timeoutMs?: number;
}

export interface WsClosed {
  code: number;
  reason: string;
}

/** A handshake the server refused with an HTTP status. */
export class HandshakeRefused extends Error {
  constructor(readonly status: number) {
    super(`handshake refused with HTTP ${status}`);
  }
}

export class WsClient {
  /** Every parsed message received, in order. */
  readonly received: any[] = [];
  /** Resolves when the socket has closed. */
  readonly closed: Promise<WsClosed>;
  #cursor = 0;
  #wake: (() => void) | null = null;

  private constructor(readonly socket: WebSocket) {
    this.closed = new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? data : data.toString();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(String(text));
      } catch {
        // keep the text
      }
      this.received.push(parsed);
      this.#wake?.();
    });
    void this.closed.then(() => this.#wake?.());
  }

  /** Opens a socket to `url` (http://… is turned into ws://…/path). Rejects with HandshakeRefused on an HTTP answer. */
  static open(url: string, options: WsOpenOptions = {}): Promise<WsClient> {
    const headers: Record<string, string> = {};
    if (options.cookie !== undefined) headers.cookie = options.cookie;
    const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers, ...(options.origin === undefined ? {} : { origin: options.origin }), handshakeTimeout: options.timeoutMs ?? 5000 });
    const client = new WsClient(socket);
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(client));
      socket.once('unexpected-response', (_request, response) => {
        response.resume();
        reject(new HandshakeRefused(response.statusCode ?? 0));
        socket.terminate();
      });
      socket.once('error', reject);
    });
  }

  /**
   * The next message (after those already taken) that matches `predicate`, within `timeoutMs`.
   * Messages before it are taken too.
   */
  async next(predicate: (message: any) => boolean = () => true, timeoutMs = 1000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#cursor < this.received.length) {
        const message = this.received[this.#cursor++];
        if (predicate(message)) return message;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`no matching message within ${timeoutMs} ms; received so far: ${JSON.stringify(this.received).slice(0, 2000)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = null;
          resolve();
        };
      });
    }
  }

  /** The next message of `type`. */
  nextOfType(type: string, timeoutMs?: number): Promise<any> {
    return this.next((message) => message?.type === type, timeoutMs);
  }

  /** Sends `value` (objects as JSON). */
  send(value: unknown): void {
    this.socket.send(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value));
  }

  /** Resolves with how the socket closed, or rejects after `timeoutMs`. */
  async closedWithin(timeoutMs = 1000): Promise<WsClosed> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /** Closes the socket (if open) and waits until it is closed. */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.socket.close();
    const timer = setTimeout(() => this.socket.terminate(), 1000);
    await this.closed;
    clearTimeout(timer);
  }
}

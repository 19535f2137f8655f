/**
 * Helpers for the session lifecycle tests: a Redis connection to look at keys, the session
 * cookie of a reply, and a `/ws` socket that records what the server does to it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import WebSocket from 'ws';

/** A plain connection to the shared test Redis, for assertions on keys and TTLs. */
export function inspector(): Redis {
  return new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: false, maxRetriesPerRequest: 1 });
}

/** Deletes every key under `prefix` (a test's own prefix only, never anything else). */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** The Set-Cookie header of `name` in `setCookies`, parsed. */
export function sessionCookie(setCookies: string[], name = 'dmsession'): { value: string; id: string; attributes: Map<string, string> } | undefined {
  for (const header of setCookies) {
    const [pair, ...rest] = header.split(';');
    const at = pair!.indexOf('=');
    if (pair!.slice(0, at).trim() !== name) continue;
    const value = pair!.slice(at + 1).trim();
    const attributes = new Map(rest.map((part) => {
      const [key, ...inner] = part.trim().split('=');
      return [key!.toLowerCase(), inner.join('=')] as [string, string];
    }));
    return { value, id: decodeURIComponent(value).split('.')[0]!, attributes };
  }
  return undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Repeats `attempt` until it returns true or `ms` pass; returns how long it took. For what the
 * server does after its reply: a fixed sleep would be a race on a loaded machine.
 */
export async function eventually(what: string, ms: number, attempt: () => Promise<boolean>, everyMs = 100): Promise<number> {
  const began = Date.now();
  let last: unknown;
  while (Date.now() - began < ms) {
    try {
      if (await attempt()) return Date.now() - began;
    } catch (error) {
      last = error;
    }
    await sleep(everyMs);
  }
  assert.fail(`${what} not within ${ms} ms${last === undefined ? '' : ` (last error: ${String(last)})`}`);
}

/** A `/ws` client that keeps every message and how the socket closed. */
export class TestSocket {
  readonly messages: any[] = [];
  closed: { code: number; at: number } | null = null;
  readonly #socket: WebSocket;
  readonly #closedPromise: Promise<{ code: number; at: number }>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on('message', (data) => {
      try {
        this.messages.push(JSON.parse(String(data)));
      } catch {
        this.messages.push(String(data));
      }
    });
    this.#closedPromise = new Promise((resolve) => {
      socket.on('close', (code) => {
        this.closed = { code, at: Date.now() };
        resolve(this.closed);
      });
    });
    socket.on('error', () => undefined);
  }

  /** Opens `/ws` of `baseUrl` with `cookie` and waits for the server's hello. */
  static async open(baseUrl: string, cookie?: string): Promise<TestSocket> {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws`, { headers: cookie === undefined ? {} : { cookie } });
    const test = new TestSocket(socket);
    await once(socket, 'open');
    await test.next((message) => message?.type === 'hello', 5000);
    return test;
  }

  /** Waits for a message matching `match` (including ones already received). */
  async next(match: (message: any) => boolean, timeoutMs = 2000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`);
      await sleep(10);
    }
  }

  /** Resolves with the close code, or rejects after `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return (await Promise.race([this.#closedPromise, timeout])).code;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING) this.#socket.terminate();
  }
}

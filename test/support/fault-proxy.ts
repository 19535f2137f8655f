/**
 * @module A TCP proxy between the app and Redis that injects faults on command: the reply of the
 * next matching command is lost after Redis ran it (the connection is reset instead), every
 * connection is reset at once, or replies are held back for a while.
 *
 * It reads the RESP stream in both directions, so it knows which reply answers which command
 * (replies come in command order on a connection). Subscriber connections are never touched by
 * `loseNextReply`: their replies do not pair with commands.
 */
import net from 'node:net';

/** A command as the app sent it: name and arguments as text (binary arguments come out mangled, which is fine for matching). */
export type CommandMatcher = (args: readonly string[]) => boolean;

interface Pending {
  readonly args: readonly string[];
  /** Set when this command's reply is to be lost. */
  drop: Armed | null;
}

interface Armed {
  readonly match: CommandMatcher;
  readonly done: (args: readonly string[] | null) => void;
}

interface Link {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly pending: Pending[];
  fromClient: Buffer;
  fromUpstream: Buffer;
  subscriber: boolean;
  closed: boolean;
  /** Replies held back by setDelay, in arrival order, each with when it may go on. */
  readonly held: { data: Buffer; at: number }[];
}

/**
 * The byte offset just past the RESP value that starts at `at`, or undefined while `buf` does not
 * hold all of it. Knows RESP2 and RESP3 types.
 */
export function respEnd(buf: Buffer, at: number): number | undefined {
  if (at >= buf.length) return undefined;
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const after = eol + 2;
  switch (type) {
    case '+': case '-': case ':': case '_': case ',': case '#': case '(':
      return after;
    case '$': case '!': case '=': {
      const len = Number(buf.toString('latin1', at + 1, eol));
      if (len < 0) return after;
      return buf.length >= after + len + 2 ? after + len + 2 : undefined;
    }
    case '*': case '~': case '>': case '%': case '|': {
      let n = Number(buf.toString('latin1', at + 1, eol));
      if (n < 0) return after;
      if (type === '%' || type === '|') n *= 2;
      let pos = after;
      for (let i = 0; i < n; i++) {
        const next = respEnd(buf, pos);
        if (next === undefined) return undefined;
        pos = next;
      }
      return pos;
    }
    default:
      // Inline command (e.g. a bare PING typed by hand): one line.
      return after;
  }
}

/** The arguments of one client command (an array of bulk strings, or an inline line). */
function commandArgs(buf: Buffer, at: number, end: number): string[] {
  if (buf[at] !== 0x2a /* '*' */) return buf.toString('latin1', at, end).trim().split(/\s+/);
  const args: string[] = [];
  let pos = buf.indexOf('\r\n', at) + 2;
  while (pos < end) {
    const eol = buf.indexOf('\r\n', pos);
    const len = Number(buf.toString('latin1', pos + 1, eol));
    args.push(buf.toString('latin1', eol + 2, eol + 2 + Math.max(len, 0)));
    pos = eol + 2 + Math.max(len, 0) + 2;
  }
  return args;
}

export interface FaultProxyCounts {
  /** Commands run by Redis whose reply the proxy threw away, resetting the app's connection. */
  repliesLost: number;
  /** Connections reset by cutAll(). */
  connectionsCut: number;
}

export class FaultProxy {
  readonly #server: net.Server;
  readonly #links = new Set<Link>();
  #armed: Armed | null = null;
  #delayMs = 0;
  #refusing = false;
  readonly counts: FaultProxyCounts = { repliesLost: 0, connectionsCut: 0 };

  private constructor(server: net.Server, private readonly target: { host: string; port: number }) {
    this.#server = server;
    server.on('connection', (client) => this.#accept(client));
  }

  /** Listens on a free port of 127.0.0.1 and forwards to `targetPort`. */
  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
    const proxy = new FaultProxy(net.createServer(), { host: targetHost, port: targetPort });
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Connections open now. */
  get openConnections(): number {
    return this.#links.size;
  }

  /**
   * The next command matching `match` (on a non-subscriber connection) goes to Redis; when its
   * reply comes back, the replies before it are delivered and then the app's connection is reset
   * (RST), so the command ran but the app never hears so. Resolves with the command's arguments
   * once the reply is lost, or null when `cancelArmed()` disarms it first.
   */
  loseNextReply(match: CommandMatcher): Promise<readonly string[] | null> {
    this.cancelArmed();
    return new Promise((resolve) => {
      this.#armed = { match, done: resolve };
    });
  }

  /** Disarms a pending loseNextReply (which then resolves with null). */
  cancelArmed(): void {
    const armed = this.#armed;
    this.#armed = null;
    armed?.done(null);
  }

  /** Resets every open connection (RST to the app, close to Redis). New connections still go through. */
  cutAll(): number {
    const links = [...this.#links];
    for (const link of links) this.#reset(link);
    this.counts.connectionsCut += links.length;
    return links.length;
  }

  /** While true, new connections are reset at once (a link that stays down while clients retry). */
  refuseNew(refusing: boolean): void {
    this.#refusing = refusing;
  }

  /** Holds every reply back by `ms` from now on (0: none). */
  setDelay(ms: number): void {
    this.#delayMs = ms;
  }

  async close(): Promise<void> {
    this.cancelArmed();
    for (const link of [...this.#links]) this.#reset(link);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    if (this.#refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.target);
    const link: Link = { client, upstream, pending: [], fromClient: Buffer.alloc(0), fromUpstream: Buffer.alloc(0), subscriber: false, closed: false, held: [] };
    this.#links.add(link);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (data) => this.#onCommands(link, data));
    upstream.on('data', (data) => this.#hold(link, data));
    for (const socket of [client, upstream]) {
      socket.on('error', () => undefined);
      socket.on('close', () => this.#reset(link));
    }
  }

  #onCommands(link: Link, data: Buffer): void {
    if (link.closed) return;
    link.upstream.write(data);
    if (link.subscriber) return;
    link.fromClient = link.fromClient.length === 0 ? data : Buffer.concat([link.fromClient, data]);
    let at = 0;
    for (;;) {
      const end = respEnd(link.fromClient, at);
      if (end === undefined) break;
      const args = commandArgs(link.fromClient, at, end);
      at = end;
      const name = (args[0] ?? '').toUpperCase();
      if (name === 'SUBSCRIBE' || name === 'PSUBSCRIBE' || name === 'SSUBSCRIBE' || name === 'MONITOR') {
        link.subscriber = true;
        link.pending.length = 0;
        break;
      }
      const pending: Pending = { args, drop: null };
      const armed = this.#armed;
      if (armed && armed.match(args)) {
        this.#armed = null;
        pending.drop = armed;
      }
      link.pending.push(pending);
    }
    link.fromClient = link.subscriber ? Buffer.alloc(0) : link.fromClient.subarray(at);
  }

  /** Delays replies by the current delay, never reordering them (a later reply never overtakes an earlier one). */
  #hold(link: Link, data: Buffer): void {
    if (this.#delayMs === 0 && link.held.length === 0) {
      this.#onReplies(link, data);
      return;
    }
    const at = Math.max(Date.now() + this.#delayMs, link.held.at(-1)?.at ?? 0);
    link.held.push({ data, at });
    if (link.held.length === 1) this.#release(link);
  }

  #release(link: Link): void {
    while (link.held.length > 0 && link.held[0]!.at <= Date.now()) this.#onReplies(link, link.held.shift()!.data);
    if (link.held.length > 0 && !link.closed) setTimeout(() => this.#release(link), link.held[0]!.at - Date.now());
  }

  #onReplies(link: Link, data: Buffer): void {
    if (link.closed) return;
    if (link.subscriber) {
      link.client.write(data);
      return;
    }
    link.fromUpstream = link.fromUpstream.length === 0 ? data : Buffer.concat([link.fromUpstream, data]);
    let at = 0;
    for (;;) {
      const end = respEnd(link.fromUpstream, at);
      if (end === undefined) break;
      const pending = link.pending.shift();
      if (pending?.drop) {
        // Deliver what came before, then reset: the command ran, its reply is lost.
        if (at > 0) link.client.write(link.fromUpstream.subarray(0, at));
        this.counts.repliesLost++;
        this.#reset(link);
        pending.drop.done(pending.args);
        return;
      }
      at = end;
    }
    if (at > 0) link.client.write(link.fromUpstream.subarray(0, at));
    link.fromUpstream = link.fromUpstream.subarray(at);
  }

  #reset(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    link.held.length = 0;
    this.#links.delete(link);
    // The command whose reply was to be lost got none (the link went down first): the next
    // matching command takes its place.
    const unfired = link.pending.find((pending) => pending.drop)?.drop;
    if (unfired && !this.#armed) this.#armed = unfired;
    else unfired?.done(null);
    if (!link.client.destroyed) link.client.resetAndDestroy();
    link.upstream.destroy();
  }
}

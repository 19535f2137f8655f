/**
 * A TCP proxy between an app and Redis that loses replies: once armed, the next command whose
 * bytes contain a marker (a function name, say) goes through to Redis, and the connection to the
 * app is reset before Redis's reply is forwarded. The command ran; the app never hears of it,
 * reconnects, and ioredis sends its unanswered commands again.
 */
import net from 'node:net';

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Set once this connection carried the marked command: its next reply is dropped. */
  doomed: boolean;
}

export class ReplyDroppingProxy {
  readonly #server: net.Server;
  readonly #open = new Set<Pair>();
  #armed: { marker: Buffer; left: number; holdMs: number } | null = null;
  /** Until then (ms), what new connections send is held back: the app's reconnect waits. */
  #holdUntil = 0;
  /** How many replies were dropped so far. */
  dropped = 0;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(targetPort: number): Promise<ReplyDroppingProxy> {
    const server = net.createServer();
    const proxy = new ReplyDroppingProxy(server);
    server.on('connection', (client) => proxy.#carry(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /**
   * The reply of the next `times` commands containing `marker` is lost (one per connection reset).
   * `holdMs`: after a drop, what the app sends on its new connections reaches Redis only that much
   * later, so its re-send comes after whatever else reaches Redis meanwhile.
   */
  dropReplyOf(marker: string, times = 1, holdMs = 0): void {
    this.#armed = { marker: Buffer.from(marker), left: times, holdMs };
  }

  /** True while an armed drop has not happened yet. */
  get armed(): boolean {
    return this.#armed !== null;
  }

  #carry(client: net.Socket, targetPort: number): void {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair: Pair = { client, upstream, doomed: false };
    this.#open.add(pair);
    const held = this.#holdUntil - Date.now();
    if (held > 0) {
      client.pause();
      setTimeout(() => client.resume(), held);
    }
    client.on('data', (data) => {
      const armed = this.#armed;
      if (armed !== null && !pair.doomed && data.includes(armed.marker)) {
        pair.doomed = true;
        this.#holdUntil = Date.now() + armed.holdMs;
        if (--armed.left === 0) this.#armed = null;
      }
      upstream.write(data);
    });
    upstream.on('data', (data) => {
      if (!pair.doomed) {
        client.write(data);
        return;
      }
      // Redis answered the marked command: lose that answer, reset the app's connection.
      this.dropped++;
      this.#close(pair);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', () => undefined);
      socket.on('close', () => this.#close(pair));
    }
  }

  #close(pair: Pair): void {
    if (!this.#open.delete(pair)) return;
    pair.client.resetAndDestroy();
    pair.upstream.destroy();
  }

  async close(): Promise<void> {
    for (const pair of [...this.#open]) this.#close(pair);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * @module The per-session notice channels this node is subscribed to.
 *
 * The store's Redis functions publish a session's change notices (changed, renamed, destroyed) on
 * the session's own channel, named like its key (`{key_prefix}{id}`; channels and keys are separate
 * namespaces in Redis, and a name in the key's slot stays usable for sharded pub/sub). A node is
 * subscribed to a session's channel only while it holds a socket of it (or a handshake of it is
 * under way), so what a node receives grows with its own sockets, not with the cluster's writes.
 */
import type { RedisClient } from '../redis/redis-client-factory.js';

type PubSubClient = Pick<RedisClient, 'subscribe' | 'unsubscribe'>;

export class SessionChannels {
  readonly #prefix: string;
  /** The session ids whose channel this node wants, each with its SUBSCRIBE's confirmation. */
  readonly #ids = new Map<string, Promise<void>>();

  constructor(keyPrefix: string) {
    this.#prefix = keyPrefix;
  }

  /** The channel of session `id`: the same name as its key. */
  channel(id: string): string {
    return this.#prefix + id;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Every wanted channel (subscribed again after a reconnect). */
  channels(): string[] {
    return [...this.#ids.keys()].map((id) => this.channel(id));
  }

  get size(): number {
    return this.#ids.size;
  }

  /**
   * Wants session `id`'s channel; sends SUBSCRIBE on `client` if it was not wanted yet (null: no
   * connection now, the next (re)subscription includes it). Resolves once Redis confirmed (or
   * failed: then the reconnect's resubscription and re-read cover it); a second caller waits for
   * the same confirmation.
   */
  add(id: string, client: PubSubClient | null): Promise<void> {
    let confirmed = this.#ids.get(id);
    if (confirmed !== undefined) return confirmed;
    confirmed =
      client === null
        ? Promise.resolve()
        : client.subscribe(this.channel(id)).then(
            () => undefined,
            () => undefined,
          );
    this.#ids.set(id, confirmed);
    return confirmed;
  }

  /** No longer wants session `id`'s channel: UNSUBSCRIBE (commands on one connection keep their order). */
  remove(id: string, client: PubSubClient | null): void {
    if (!this.#ids.delete(id) || client === null) return;
    client.unsubscribe(this.channel(id)).catch(() => undefined);
  }
}

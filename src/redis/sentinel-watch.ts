/**
 * @module Hears the sentinels announce a new master (`+switch-master`), so a pool leaves the old
 * one at once.
 *
 * After a failover the old master still answers as a master until the sentinels see it again and
 * turn it into a replica (about 8 s with the default periods). A connection opened before the
 * failover would go on reading there while connections opened since write to the new master: a
 * session ended on the new master would still be served through the old one. ioredis asks the
 * sentinels only when it (re)connects, so keepsake subscribes to every sentinel (any one of them
 * may be down) and replaces the pool's connections when one announces the switch.
 */
import { debuglog } from 'node:util';
import { Redis } from 'ioredis';
import type { PoolConfig } from '../config/schema.js';
import { reconnectDelay } from './redis-client-factory.js';

const trace = debuglog('keepsake');

/** The channel every sentinel publishes a failover's end on: `<name> <old ip> <old port> <new ip> <new port>`. */
export const SWITCH_MASTER_CHANNEL = '+switch-master';

export class SentinelWatch {
  readonly #config: PoolConfig;
  readonly #onSwitch: (to: string) => void;
  readonly #warn: (message: string) => void;
  #clients: Redis[] = [];
  /** The master the last announcement named: every sentinel announces the same switch. */
  #announced: string | null = null;

  /**
   * `onSwitch` gets the new master's `host:port`, once per switch (not once per sentinel); `warn`
   * hears of a sentinel that refuses the subscription (an ACL without `+subscribe`).
   */
  constructor(config: PoolConfig, onSwitch: (to: string) => void, warn: (message: string) => void) {
    this.#config = config;
    this.#onSwitch = onSwitch;
    this.#warn = warn;
  }

  /** Subscribes on every sentinel (once; connections are made in the background and kept up). */
  start(): void {
    if (this.#clients.length > 0 || !this.#config.sentinels) return;
    const name = this.#config.sentinel_name;
    for (const sentinel of this.#config.sentinels) {
      const client = new Redis({
        host: sentinel.host,
        port: sentinel.port,
        password: this.#config.sentinel_password,
        tls: this.#config.tls ? {} : undefined,
        connectTimeout: this.#config.connect_timeout_ms,
        retryStrategy: reconnectDelay,
        // A subscriber: nothing is queued while it reconnects, and ioredis subscribes again.
        maxRetriesPerRequest: null,
        connectionName: 'keepsake:sentinel-watch',
        lazyConnect: true,
      });
      // A sentinel that is down is retried quietly: the others still announce.
      client.on('error', (error: Error) => trace('sentinel watch %s:%d: %s', sentinel.host, sentinel.port, error.message));
      client.on('message', (_channel: string, message: string) => {
        const [master, , , host, port] = message.split(' ');
        if (master !== name || host === undefined || port === undefined || `${host}:${port}` === this.#announced) return;
        this.#announced = `${host}:${port}`;
        this.#onSwitch(this.#announced);
      });
      // Connects (lazyConnect) and subscribes again after every reconnect.
      client.subscribe(SWITCH_MASTER_CHANNEL).catch((error: Error) => {
        trace('sentinel watch subscribe: %s', error.message);
        // Refused, not cut off: this sentinel will never announce a switch to this node.
        if (error.name === 'ReplyError') this.#warn(`sentinel ${sentinel.host}:${sentinel.port} refused SUBSCRIBE ${SWITCH_MASTER_CHANNEL} (${error.message.split(' ')[0]}): after a failover this node may read from the old master until it is demoted; grant the sentinels' user +subscribe on that channel`);
      });
      this.#clients.push(client);
    }
  }

  close(): void {
    for (const client of this.#clients) client.disconnect();
    this.#clients = [];
  }
}

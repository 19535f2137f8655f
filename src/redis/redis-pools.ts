/**
 * @module The named Redis pools of the config, `[redis_connection_pool.NAME]`, built lazily.
 */
import type { KeepsakeConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { KeepsakeLogger } from '../logger.js';
import { RedisPool } from './redis-pool.js';

/**
 * The container's `redisPools` singleton: one RedisPool per `[redis_connection_pool.NAME]`.
 * @example
 * const ready = await Promise.all(container.cradle.redisPools.all().map((pool) => pool.ping()));
 */
export class RedisPools {
  readonly #config: KeepsakeConfig;
  readonly #pools = new Map<string, RedisPool>();

  readonly #logger: KeepsakeLogger | undefined;

  constructor({ config, logger }: { config: KeepsakeConfig; logger?: KeepsakeLogger }) {
    this.#config = config;
    this.#logger = logger;
  }

  /** The pool named `name`; created on first use (creating a pool opens no connection). */
  get(name: string): RedisPool {
    let pool = this.#pools.get(name);
    if (pool === undefined) {
      const poolConfig = this.#config.redis_connection_pool[name];
      if (poolConfig === undefined) throw new ConfigError(`no [redis_connection_pool.${name}] section in ${this.#config.source}`);
      pool = new RedisPool(name, poolConfig, this.#logger);
      this.#pools.set(name, pool);
    }
    return pool;
  }

  /** Every configured pool (creating the ones not yet used). */
  all(): RedisPool[] {
    return Object.keys(this.#config.redis_connection_pool).map((name) => this.get(name));
  }

  /** Pools that have been used so far. */
  opened(): RedisPool[] {
    return [...this.#pools.values()];
  }

  /** Drains and closes every pool that was opened. */
  async close(): Promise<void> {
    await Promise.all(this.opened().map((pool) => pool.close()));
  }
}

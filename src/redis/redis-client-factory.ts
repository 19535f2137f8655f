/**
 * @module Builds an ioredis client (standalone, Cluster or Sentinel) from one pool's config.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { PoolConfig } from '../config/schema.js';

/** A connection keepsake can send commands on: a Redis, or a Cluster that routes them. */
export type RedisClient = Redis | Cluster;

/** Reconnect delays grow exponentially to ~2 s, with jitter so app nodes do not reconnect in step. */
export function reconnectDelay(attempt: number): number {
  const capped = Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
  return Math.round(capped / 2 + Math.random() * (capped / 2));
}

/** Options shared by every connection: bounded waits and shared socket writes. */
function connectionOptions(pool: PoolConfig): RedisOptions {
  return {
    username: pool.username,
    password: pool.password,
    db: pool.db,
    tls: pool.tls ? {} : undefined,
    connectTimeout: pool.connect_timeout_ms,
    commandTimeout: pool.command_timeout_ms,
    // Commands of concurrent requests share socket writes through the pool (shared-writes.ts),
    // which costs less than auto-pipelining; a Cluster turns auto-pipelining on below.
    enableAutoPipelining: false,
    retryStrategy: reconnectDelay,
    maxRetriesPerRequest: 1,
    // A Redis replaying its data after a restart says LOADING; ioredis re-checks after the ETA it
    // gives, at least 1 s. Re-check sooner, so requests succeed as soon as the data is back.
    maxLoadingRetryTime: 100,
    lazyConnect: true,
  };
}

/**
 * Creates a client that is not yet connected (call `connect()`).
 * @param purpose shown in CLIENT LIST, so operators can tell pooled and subscriber connections apart.
 */
export function createRedisClient(pool: PoolConfig, purpose: string): RedisClient {
  const client = newClient(pool, purpose);
  // See hgetallRaw: the upper-case name has no reply transformer.
  client.addBuiltinCommand('HGETALL');
  return client;
}

/**
 * HGETALL as the flat `[field, value, …]` array of Buffers Redis sends. ioredis's `hgetallBuffer`
 * turns it into an object, converting every field name to a string twice on the way (~10 µs per
 * session load on our machine).
 */
export function hgetallRaw(client: RedisClient, key: string): Promise<Buffer[]> {
  return (client as unknown as { HGETALLBuffer(key: string): Promise<Buffer[]> }).HGETALLBuffer(key);
}

function newClient(pool: PoolConfig, purpose: string): RedisClient {
  const options = { ...connectionOptions(pool), connectionName: `keepsake:${purpose}` };
  if (pool.cluster) {
    const clusterOptions: ClusterOptions = {
      redisOptions: { ...options, enableAutoPipelining: false, db: undefined, lazyConnect: false },
      enableAutoPipelining: true,
      clusterRetryStrategy: reconnectDelay,
      lazyConnect: true,
      maxRedirections: 16,
      slotsRefreshTimeout: pool.connect_timeout_ms,
    };
    return new Cluster(pool.cluster, clusterOptions);
  }
  if (pool.sentinels) {
    return new Redis({
      ...options,
      sentinels: pool.sentinels,
      name: pool.sentinel_name,
      sentinelPassword: pool.sentinel_password,
      sentinelRetryStrategy: reconnectDelay,
      // Without these ioredis would talk plain TCP to the sentinels and to the master they name.
      enableTLSForSentinelMode: pool.tls,
      sentinelTLS: pool.tls ? {} : undefined,
    });
  }
  return new Redis({ ...options, host: pool.host, port: pool.port });
}

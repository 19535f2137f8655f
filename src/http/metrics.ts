/**
 * @module Prometheus metrics (prom-client), one registry per app instance so two apps in one
 * process never clash: requests, sessions started/persisted/failed, persist latency, pool
 * size/borrowed/pending, open sockets and pub/sub reconnects.
 *
 * Cheap on the hot path: a request costs one cached counter increment and one histogram
 * observation; session metrics arrive through the SessionObserver hooks the manager already calls;
 * pool and socket gauges are read only when /metrics is scraped.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RedisPools } from '../redis/redis-pools.js';
import type { SessionObserver } from '../session/session-observer.js';

/** Route label of requests no route matched (keeps label cardinality bounded). */
const UNMATCHED = '(unmatched)';

/**
 * What the WebSocket side reports. The socket registry hands over a counter function once; the
 * pub/sub subscriber either calls `pubsubReconnected()` or is handed to `watchSubscriber()`.
 */
export interface SocketMetrics {
  /** `count` is called on every scrape and reported as the open sockets gauge. */
  trackOpenSockets(count: () => number): void;
  /** Counts one reconnect of the pub/sub subscriber connection (it resubscribes after it). */
  pubsubReconnected(): void;
  /** Counts every `ready` of `client` after its first as a pub/sub reconnect. */
  watchSubscriber(client: { on(event: 'ready', listener: () => void): unknown }): void;
}

interface RequestSeries {
  count: Counter.Internal;
  duration: Histogram.Internal<'method' | 'route'>;
}

/** keepsake's metrics; also the SessionObserver the SessionManager reports to. */
export class Metrics implements SessionObserver, SocketMetrics {
  /** This app's registry (never prom-client's global one). */
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'route' | 'status'>;
  readonly #requestDuration: Histogram<'method' | 'route'>;
  readonly #sessionsStarted: Counter<'created'>;
  readonly #persisted: Counter;
  readonly #persistFailures: Counter;
  readonly #persistDuration: Histogram;
  readonly #pubsubReconnects: Counter;
  readonly #series = new Map<string, RequestSeries>();
  #openSockets: () => number = () => 0;

  constructor({ redisPools }: { redisPools: RedisPools }) {
    const registers = [this.registry];
    this.#requests = new Counter({ name: 'keepsake_http_requests_total', help: 'HTTP requests answered, by method, route and status', labelNames: ['method', 'route', 'status'], registers });
    this.#requestDuration = new Histogram({
      name: 'keepsake_http_request_duration_seconds',
      help: 'Time from request received to reply sent, by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.#sessionsStarted = new Counter({ name: 'keepsake_sessions_started_total', help: 'Sessions started by requests; created="true" for new sessions', labelNames: ['created'], registers });
    this.#persisted = new Counter({ name: 'keepsake_session_persists_total', help: 'Session persists that reached Redis', registers });
    this.#persistFailures = new Counter({ name: 'keepsake_session_persist_failures_total', help: 'Session persists that failed (the reply became an error, or it was logged with persist = after_response)', registers });
    this.#persistDuration = new Histogram({
      name: 'keepsake_session_persist_duration_seconds',
      help: 'Latency of successful session persists',
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    const poolGauge = (name: string, help: string, read: (pool: { size: number; borrowed: number; pending: number }) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'],
        registers,
        // Read at scrape time: nothing to do per request. Only pools in use are reported.
        collect() {
          this.reset();
          for (const pool of redisPools.opened()) this.set({ pool: pool.name }, read(pool));
        },
      });
    poolGauge('keepsake_redis_pool_size', 'Connections the pool holds (idle and borrowed)', (pool) => pool.size);
    poolGauge('keepsake_redis_pool_borrowed', 'Connections borrowed right now (held only while commands are issued)', (pool) => pool.borrowed);
    poolGauge('keepsake_redis_pool_pending', 'Requests waiting for a connection', (pool) => pool.pending);
    const openSockets = () => this.#openSockets();
    new Gauge({
      name: 'keepsake_websocket_open_sockets',
      help: 'WebSockets open right now',
      registers,
      collect() {
        this.set(openSockets());
      },
    });
    this.#pubsubReconnects = new Counter({ name: 'keepsake_pubsub_reconnects_total', help: 'Reconnects of the pub/sub subscriber (each followed by a resubscribe)', registers });
  }

  /** The Content-Type of `render()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Records one answered request. `route` is the route pattern (bounded cardinality), not the URL. */
  observeRequest(method: string, route: string | undefined, status: number, elapsedMs: number): void {
    const key = `${method} ${route ?? UNMATCHED} ${status}`;
    let series = this.#series.get(key);
    if (series === undefined) {
      const routeLabel = route ?? UNMATCHED;
      series = {
        count: this.#requests.labels({ method, route: routeLabel, status: String(status) }),
        duration: this.#requestDuration.labels({ method, route: routeLabel }),
      };
      this.#series.set(key, series);
    }
    series.count.inc();
    series.duration.observe(elapsedMs / 1000);
  }

  started(created: boolean): void {
    this.#sessionsStarted.inc({ created: created ? 'true' : 'false' });
  }

  persisted(durationMs: number): void {
    this.#persisted.inc();
    this.#persistDuration.observe(durationMs / 1000);
  }

  persistFailed(): void {
    this.#persistFailures.inc();
  }

  trackOpenSockets(count: () => number): void {
    this.#openSockets = count;
  }

  pubsubReconnected(): void {
    this.#pubsubReconnects.inc();
  }

  watchSubscriber(client: { on(event: 'ready', listener: () => void): unknown }): void {
    let first = true;
    client.on('ready', () => {
      if (first) first = false;
      else this.pubsubReconnected();
    });
  }
}

export interface MetricsPluginOptions {
  metrics: Metrics;
}

async function metricsPlugin(app: FastifyInstance, { metrics }: MetricsPluginOptions): Promise<void> {
  // Callback style: no promise per request.
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    metrics.observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime);
    done();
  });
}

/** Counts every request on `app`: `await app.register(metricsPlugin, { metrics })`. Serve `metrics.render()` yourself. */
export default fp(metricsPlugin, { name: 'keepsake-metrics', fastify: '5.x' });
export { metricsPlugin };

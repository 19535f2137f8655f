/**
 * @module Prometheus metrics (prom-client), one registry per app instance so two apps in one
 * process never clash: requests, sessions started/persisted/failed, persist latency, pool
 * size/borrowed/pending, open sockets and pub/sub reconnects.
 *
 * Cheap on the hot path: prom-client hashes label sets on every call (microseconds), so a
 * request only adds to plain numbers of its series (tens of nanoseconds) and prom-client formats
 * them when /metrics is scraped. Session metrics arrive through the SessionObserver hooks, the
 * same way (plain numbers); pool and socket gauges are read only at scrape time.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import type { RedisPools } from '../redis/redis-pools.js';
import type { LegacyObserver } from '../legacy/legacy-sessions.js';
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
  /** Counts one session change notice this node's subscriber received (its own sessions' only). */
  sessionNoticeReceived(): void;
}

type RequestLabels = { method: string; route: string; status: string } | Record<string, never>;

/** Seconds; the request latency buckets. */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Seconds; the persist latency buckets. */
const PERSIST_BUCKETS = [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** One method/route/status: a count and latency buckets in plain numbers. */
interface RequestSeries {
  readonly labels: RequestLabels;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets: Float64Array;
}

/** keepsake's metrics; also the SessionObserver the SessionManager reports to. */
export class Metrics implements SessionObserver, SocketMetrics, LegacyObserver {
  /** This app's registry (never prom-client's global one). */
  readonly registry = new Registry();
  /** Sessions started by requests: created, and existing (plain numbers, reported at scrape time). */
  readonly #started = { created: 0, existing: 0 };
  /** Persist latencies (seconds) in plain numbers; its count is the persists total. */
  readonly #persists: RequestSeries = { labels: {} as RequestLabels, count: 0, sum: 0, buckets: new Float64Array(PERSIST_BUCKETS.length + 1) };
  readonly #persistFailures: Counter;
  readonly #pubsubReconnects: Counter;
  readonly #noticesReceived: Counter;
  readonly #legacyAdoptions: Counter;
  readonly #legacySkipped: Counter;
  readonly #series = new Map<string, RequestSeries>();
  #openSockets: () => number = () => 0;
  readonly #loads: Histogram;
  readonly #updateRetries: Counter;
  readonly #updateConflicts: Counter;
  readonly #cookiesRejected: Counter;

  constructor({ redisPools, sessionStore }: { redisPools: RedisPools; sessionStore?: { readonly cacheStats: { readonly hits: number; readonly misses: number } } }) {
    const registers = [this.registry];
    this.#loads = new Histogram({ name: 'keepsake_session_load_duration_seconds', help: 'Latency of session loads from Redis (cookie to session)', buckets: PERSIST_BUCKETS, registers });
    this.#updateRetries = new Counter({ name: 'keepsake_session_update_retries_total', help: 'update() compare-and-sets lost to another node and re-run', registers });
    this.#updateConflicts = new Counter({ name: 'keepsake_session_update_conflicts_total', help: 'update() calls that gave up when their time budget ran out (409 ERR_SESSION_CONFLICT)', registers });
    this.#cookiesRejected = new Counter({ name: 'keepsake_session_cookies_rejected_total', help: 'Session cookies rejected (tampered, malformed, oversized, unknown secret); a new session started', registers });
    const cache = () => sessionStore?.cacheStats ?? { hits: 0, misses: 0 };
    new Counter({
      name: 'keepsake_session_cache_lookups_total',
      help: "Loads of large sessions by whether this node's copy served them (result=hit) or not (miss)",
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        this.inc({ result: 'hit' }, cache().hits);
        this.inc({ result: 'miss' }, cache().misses);
      },
    });
    new Gauge({
      name: 'keepsake_session_cache_hit_ratio',
      help: "Share of large-session loads served by this node's copy (0 before any)",
      registers,
      collect() {
        const { hits, misses } = cache();
        this.set(hits + misses === 0 ? 0 : hits / (hits + misses));
      },
    });
    const series = this.#series;
    new Counter({
      name: 'keepsake_http_requests_total',
      help: 'HTTP requests answered, by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
      collect() {
        this.reset();
        for (const one of series.values()) this.inc(one.labels, one.count);
      },
    });
    this.registry.registerMetric(
      histogramMetric('keepsake_http_request_duration_seconds', 'Time from request received to reply sent, by method, route and status', REQUEST_BUCKETS, series),
    );
    const started = this.#started;
    new Counter({
      name: 'keepsake_sessions_started_total',
      help: 'Sessions started by requests; created="true" for new sessions',
      labelNames: ['created'],
      registers,
      collect() {
        this.reset();
        if (started.created > 0) this.inc({ created: 'true' }, started.created);
        if (started.existing > 0) this.inc({ created: 'false' }, started.existing);
      },
    });
    const persists = this.#persists;
    new Counter({
      name: 'keepsake_session_persists_total',
      help: 'Session persists that reached Redis',
      registers,
      collect() {
        this.reset();
        this.inc(persists.count);
      },
    });
    this.#persistFailures = new Counter({ name: 'keepsake_session_persist_failures_total', help: 'Session persists that failed (the reply became an error, or it was logged with persist = after_response)', registers });
    this.registry.registerMetric(
      histogramMetric('keepsake_session_persist_duration_seconds', 'Latency of successful session persists', PERSIST_BUCKETS, new Map([['', persists]])),
    );
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
    this.#noticesReceived = new Counter({ name: 'keepsake_session_notices_received_total', help: 'Session change notices this node received (only sessions with sockets here)', registers });
    this.#legacyAdoptions = new Counter({ name: 'keepsake_legacy_sessions_adopted_total', help: 'Sessions of @fastify/session or express-session adopted by this process ([legacy_sessions])', registers });
    this.#legacySkipped = new Counter({ name: 'keepsake_legacy_session_values_skipped_total', help: 'Values of adopted legacy sessions that keepsake refused and skipped', registers });
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
      series = { labels: { method, route: route ?? UNMATCHED, status: String(status) }, count: 0, sum: 0, buckets: new Float64Array(REQUEST_BUCKETS.length + 1) };
      this.#series.set(key, series);
    }
    observe(series, REQUEST_BUCKETS, elapsedMs / 1000);
  }

  started(created: boolean): void {
    if (created) this.#started.created++;
    else this.#started.existing++;
  }

  persisted(durationMs: number): void {
    observe(this.#persists, PERSIST_BUCKETS, durationMs / 1000);
  }

  persistFailed(): void {
    this.#persistFailures.inc();
  }

  legacyAdopted(skippedValues: number): void {
    this.#legacyAdoptions.inc();
    if (skippedValues > 0) this.#legacySkipped.inc(skippedValues);
  }

  loaded(durationMs: number): void {
    this.#loads.observe(durationMs / 1000);
  }

  updateRetried(): void {
    this.#updateRetries.inc();
  }

  updateConflicted(): void {
    this.#updateConflicts.inc();
  }

  cookieRejected(): void {
    this.#cookiesRejected.inc();
  }

  trackOpenSockets(count: () => number): void {
    this.#openSockets = count;
  }

  pubsubReconnected(): void {
    this.#pubsubReconnects.inc();
  }

  sessionNoticeReceived(): void {
    this.#noticesReceived.inc();
  }

  watchSubscriber(client: { on(event: 'ready', listener: () => void): unknown }): void {
    let first = true;
    client.on('ready', () => {
      if (first) first = false;
      else this.pubsubReconnected();
    });
  }
}

/** Adds one observation (seconds) to a series' plain numbers. */
function observe(series: RequestSeries, buckets: readonly number[], seconds: number): void {
  let bucket = 0;
  while (bucket < buckets.length && seconds > buckets[bucket]!) bucket++;
  series.buckets[bucket]!++;
  series.count++;
  series.sum += seconds;
}

/**
 * A latency histogram as prom-client's registry reads a metric (`get()`), built from the plain
 * numbers of each series at scrape time.
 */
/**
 * A histogram read from counts this module keeps (one Float64Array per series, no prom-client
 * object per label set on the request path). prom-client's registry reads any object with
 * name/help/type/get/reset, but types `registerMetric` as its own classes (private members), so
 * the object is handed over as one.
 */
function histogramMetric(name: string, help: string, buckets: readonly number[], series: Map<string, RequestSeries>): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const one of series.values()) {
        let cumulative = 0;
        buckets.forEach((le, i) => {
          cumulative += one.buckets[i]!;
          values.push({ metricName: `${name}_bucket`, labels: { ...one.labels, le }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { ...one.labels, le: '+Inf' }, value: one.count });
        values.push({ metricName: `${name}_sum`, labels: one.labels, value: one.sum });
        values.push({ metricName: `${name}_count`, labels: one.labels, value: one.count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset() {
      for (const one of series.values()) {
        one.count = 0;
        one.sum = 0;
        one.buckets.fill(0);
      }
    },
  };
  return metric as unknown as Metric;
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

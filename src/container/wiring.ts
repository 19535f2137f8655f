/**
 * @module The composition root: every singleton keepsake builds, top to bottom, in one place.
 * Apps add their controllers to the same container (see app/wiring.ts).
 */
import { aliasTo, asClass, asFunction, asValue, createContainer, InjectionMode, type AwilixContainer } from 'awilix';
import type { KeepsakeConfig } from '../config/schema.js';
import { Metrics } from '../http/metrics.js';
import { LegacySessions } from '../legacy/legacy-sessions.js';
import { consoleLogger, type KeepsakeLogger } from '../logger.js';
import { AppLogger } from '../logging/app-logger.js';
import { RedisPools } from '../redis/redis-pools.js';
import { CookieCodec } from '../session/cookie-codec.js';
import type { SessionObserver } from '../session/session-observer.js';
import { SessionManager } from '../session/session-manager.js';
import { SessionStore } from '../session/session-store.js';
import { SessionUpdater } from '../session/session-updater.js';
import { Devices } from '../session/devices.js';
import { UserIndex } from '../session/user-index.js';
import { ValueCodec } from '../session/value-codec.js';
import { ConnectionRegistry } from '../websocket/connection-registry.js';
import { LiveSessions } from '../websocket/live-sessions.js';
import { Presence } from '../websocket/presence.js';
import { SessionNotices } from '../websocket/session-notices.js';

/** Everything the container can resolve; controllers list what they need from it. */
export interface KeepsakeCradle {
  config: KeepsakeConfig;
  /** Where keepsake reports what it survives (corrupt bytes, rejected cookies); apps pass `app.log`. */
  logger: KeepsakeLogger;
  redisPools: RedisPools;
  valueCodec: ValueCodec;
  cookieCodec: CookieCodec;
  sessionStore: SessionStore;
  sessionUpdater: SessionUpdater;
  userIndex: UserIndex;
  /** Prometheus metrics of this app (one registry per container); also the session observer. */
  metrics: Metrics;
  sessionObserver: SessionObserver;
  /** Adopts @fastify/session and express-session sessions; null without a [legacy_sessions] section. */
  legacySessions: LegacySessions | null;
  sessionManager: SessionManager;
  /** This node's open WebSockets by session and user; reaches a user's sockets on every node. */
  connectionRegistry: ConnectionRegistry;
  /** This node's pub/sub subscriber of session notices (opened by the first WebSocket). */
  sessionNotices: SessionNotices;
  /** Keeps every socket's read-only session current; what the websocket plugin is given. */
  liveSessions: LiveSessions;
  /** A user's devices: sessions with their device metadata and presence. */
  devices: Devices;
  /** This node's sockets per logged-in session, in Redis, and the `devices` push. */
  presence: Presence;
}

export type KeepsakeContainer = AwilixContainer<KeepsakeCradle>;

/**
 * Builds the container; nothing connects to Redis until a session is started.
 * @param options.logger where keepsake logs (fastify's `app.log` fits). @default consoleLogger
 */
export function createKeepsakeContainer(config: KeepsakeConfig, options: { logger?: KeepsakeLogger } = {}): KeepsakeContainer {
  // PROXY: each class receives the cradle and takes what it names, e.g. `{ config, redisPools }`.
  const container = createContainer<KeepsakeCradle>({ injectionMode: InjectionMode.PROXY, strict: true });
  container.register({
    config: asValue(config),
    logger: asValue(options.logger ?? new AppLogger(consoleLogger)),
    redisPools: asClass(RedisPools).singleton().disposer((pools) => pools.close()),
    valueCodec: asClass(ValueCodec).singleton(),
    cookieCodec: asClass(CookieCodec).singleton(),
    sessionStore: asClass(SessionStore).singleton(),
    sessionUpdater: asClass(SessionUpdater).singleton(),
    userIndex: asClass(UserIndex).singleton(),
    devices: asClass(Devices).singleton(),
    metrics: asClass(Metrics).singleton(),
    sessionObserver: aliasTo('metrics'),
    legacySessions: asFunction(({ config, redisPools, metrics, logger }: KeepsakeCradle) =>
      config.legacy_sessions === undefined ? null : new LegacySessions({ config, redisPools, observer: metrics, logger }),
    ).singleton(),
    sessionManager: asClass(SessionManager).singleton(),
    connectionRegistry: asClass(ConnectionRegistry).singleton(),
    sessionNotices: asClass(SessionNotices).singleton().disposer((notices) => notices.close()),
    presence: asClass(Presence).singleton(),
    liveSessions: asClass(LiveSessions).singleton(),
  });
  return container;
}

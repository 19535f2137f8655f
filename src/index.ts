/**
 * @module keepsake: Redis sessions for fastify HTTP controllers and WebSocket routes.
 * This is the only public entry point.
 */
export { createKeepsake, type Keepsake } from './keepsake.js';
export { loadConfig, parseConfigText, validateConfig, describeConfig, type LoadConfigOptions } from './config/load-config.js';
export type { KeepsakeConfig, KeepsakeConfigInput, LegacySessionsConfig, PoolConfig, ServerConfig, SessionConfig } from './config/schema.js';
export { LegacySessions, type LegacyStats, type AdoptAllReport } from './legacy/legacy-sessions.js';
export { createKeepsakeContainer, type KeepsakeContainer, type KeepsakeCradle } from './container/wiring.js';
export { SessionManager, type SessionRequest } from './session/session-manager.js';
export { Session, type SessionMeta } from './session/session.js';
export { SessionFlash } from './session/session-flash.js';
export type { FlashValues, FlashKey, FlashValue } from './session/flash-values.js';
export { UserIndex } from './session/user-index.js';
export { Devices, type Device } from './session/devices.js';
export { Presence } from './websocket/presence.js';
export { consoleLogger, type KeepsakeLogger } from './logger.js';
export { SessionData, type SessionValues, type SessionKey, type SessionValue } from './session/session-data.js';
export type { SessionObserver } from './session/session-observer.js';
export { RedisPool } from './redis/redis-pool.js';
export { RedisPools } from './redis/redis-pools.js';
export { default as sessionPlugin } from './http/session-plugin.js';
export { SESSION_DECORATORS } from './http/session-decorators.js';
export { default as metricsPlugin, Metrics, type SocketMetrics, type MetricsPluginOptions } from './http/metrics.js';
export { default as gracefulClose } from './http/graceful-close.js';
export { registerErrorReplies, errorBody, toKeepsakeError, type ErrorBody } from './http/error-replies.js';
export { registerZodValidation } from './http/zod-validation.js';
export { default as websocketPlugin, type WebSocketPluginOptions } from './websocket/websocket-plugin.js';
export type { WebSocketController } from './websocket/websocket-controller.js';
export { Connection, CLOSE_SESSION_ENDED, CLOSE_GOING_AWAY, CLOSE_TOO_MANY_SOCKETS, CLOSE_TOO_SLOW } from './websocket/connection.js';
export { readOnlyCopy, type ReadOnlySession, type ReadOnlySessionData, type DeepReadonly } from './websocket/read-only-session.js';
export { ConnectionRegistry } from './websocket/connection-registry.js';
export { LiveSessions } from './websocket/live-sessions.js';
export { SessionNotices, type UserNotice } from './websocket/session-notices.js';
export { KEEPSAKE_CHANNELS, sessionHash, type SessionSpanContext, type LoadSpanContext, type PersistSpanContext, type UpdateSpanContext, type NoticeSpanContext } from './tracing/session-channels.js';
export * from './errors.js';

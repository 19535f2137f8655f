/**
 * @module keepsake: Redis sessions for fastify HTTP controllers and WebSocket routes.
 * This is the only public entry point.
 */
export { createKeepsake, type Keepsake } from './keepsake.js';
export { loadConfig, parseConfigText, validateConfig, describeConfig, type LoadConfigOptions } from './config/load-config.js';
export type { KeepsakeConfig, KeepsakeConfigInput, PoolConfig, ServerConfig, SessionConfig } from './config/schema.js';
export { createKeepsakeContainer, type KeepsakeContainer, type KeepsakeCradle } from './container/wiring.js';
export { SessionManager, type SessionRequest } from './session/session-manager.js';
export { Session, type SessionMeta } from './session/session.js';
export { SessionData, type SessionValues, type SessionKey, type SessionValue } from './session/session-data.js';
export type { SessionObserver } from './session/session-observer.js';
export { RedisPool } from './redis/redis-pool.js';
export { RedisPools } from './redis/redis-pools.js';
export { default as sessionPlugin } from './http/session-plugin.js';
export { registerErrorReplies, errorBody, toKeepsakeError, type ErrorBody } from './http/error-replies.js';
export { registerZodValidation } from './http/zod-validation.js';
export * from './errors.js';

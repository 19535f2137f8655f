/**
 * @module fastify's own idioms beside DI: `fastify.sessionManager` (the container's singleton) and
 * `request.startSession()` / `request.restoreSession()`, typed by declaration merging.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { SessionManager } from '../session/session-manager.js';
// Aliased: inside `declare module 'fastify'` a plain `Session` would name fastify's own
// `Session` interface, which @fastify/session declares (apps migrating from it have both).
import type { Session as KeepsakeSession } from '../session/session.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** keepsake's singleton SessionManager (the same object the container injects). */
    readonly sessionManager: SessionManager;
  }
  interface FastifyRequest {
    /**
     * `sessionManager.start(request)`: the cookie's session, or a new one (stored and its cookie
     * set before the reply leaves).
     * @example const session = await request.startSession();
     */
    startSession(): Promise<KeepsakeSession>;
    /** `sessionManager.restore(request)`: the cookie's session, or null; never creates one. */
    restoreSession(): Promise<KeepsakeSession | null>;
  }
  interface FastifyContextConfig {
    /** keepsake's per-route options. */
    keepsake?: {
      /**
       * false: sessions read by this route keep their remaining life (no TTL refresh, no cookie
       * re-sent), as a polling route needs; a write by the route still refreshes it. @default true
       */
      extendSession?: boolean;
    };
  }
}

/** Names of what `decorateSessions` adds, for fastify-plugin's `decorators` of dependent plugins. */
export const SESSION_DECORATORS = { fastify: ['sessionManager'], request: ['startSession', 'restoreSession'] };

/** Decorates `app` (once per instance tree: fastify refuses a second decorator of one name). */
export function decorateSessions(app: FastifyInstance, sessionManager: SessionManager): void {
  app.decorate('sessionManager', sessionManager);
  app.decorateRequest('startSession', function startSession(this: FastifyRequest) {
    return sessionManager.start(this);
  });
  app.decorateRequest('restoreSession', function restoreSession(this: FastifyRequest) {
    return sessionManager.restore(this);
  });
}

/**
 * @module Routes that must not extend a session's life (a page polling every few seconds would
 * keep an abandoned session alive forever): `config: { keepsake: { extendSession: false } }`.
 * Only those routes get a hook (added when the route is declared); others pay nothing.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { kKeepLifespan } from '../session/keep-lifespan.js';

function keepLifespan(request: FastifyRequest, _reply: unknown, done: () => void): void {
  (request as unknown as Record<symbol, boolean>)[kKeepLifespan] = true;
  done();
}

/** Marks the requests of routes declared with `extendSession: false` (routes declared after this). */
export function registerKeepLifespanRoutes(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.config?.keepsake?.extendSession !== false) return;
    const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [keepLifespan as never, ...own];
  });
}

/**
 * @module The demo application: builds a fastify instance (not listening) from a config.
 * `bin/` listens and handles signals; tests call buildApp directly.
 */
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createKeepsakeContainer, gracefulClose, metricsPlugin, registerErrorReplies, registerZodValidation, sessionPlugin, websocketPlugin, type KeepsakeConfig } from '../src/index.js';
import { registerRoutes } from './routes.js';
import { registerDemoControllers, type DemoCradle } from './wiring.js';

export interface BuildAppOptions {
  /** fastify's logger option. @default false */
  logger?: FastifyServerOptions['logger'];
}

const PUBLIC_DIR = fileURLToPath(new URL('../../app/public/', import.meta.url));

export async function buildApp(config: KeepsakeConfig, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  // trust_proxy is one of the forms trustProxy takes (its overloads accept each, not their union).
  const app = Fastify({ logger: options.logger ?? false, forceCloseConnections: false, trustProxy: config.server.trust_proxy as boolean });
  const container = registerDemoControllers(createKeepsakeContainer(config, { logger: app.log }));
  const cradle: DemoCradle = container.cradle;
  // onClose hooks run in reverse order: registered first, the pools close last, after the server
  // has finished its in-flight requests and every plugin (late persists, sockets) is done.
  app.addHook('onClose', async () => container.dispose());

  // JSON only: a text/plain body is refused with 415 instead of failing validation.
  app.removeContentTypeParser('text/plain');
  registerErrorReplies(app);
  registerZodValidation(app);
  await app.register(gracefulClose);
  await app.register(metricsPlugin, { metrics: cradle.metrics });
  await app.register(sessionPlugin, { sessionManager: cradle.sessionManager });
  await app.register(fastifyStatic, { root: PUBLIC_DIR, index: 'index.html', wildcard: false });
  // `/ws`: the session read-only and live, on the HTTP port (closes its sockets with 1001 on close).
  await app.register(websocketPlugin, { liveSessions: cradle.liveSessions, routes: { '/ws': cradle.liveSocket } });
  registerRoutes(app, cradle);
  return app;
}

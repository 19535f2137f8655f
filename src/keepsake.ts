/**
 * @module `createKeepsake`: config + container + the fastify plugin, for apps that wire by hand.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { loadConfig, validateConfig } from './config/load-config.js';
import type { KeepsakeConfig, KeepsakeConfigInput } from './config/schema.js';
import { createKeepsakeContainer, type KeepsakeContainer } from './container/wiring.js';
import sessionPlugin from './http/session-plugin.js';
import type { SessionManager } from './session/session-manager.js';
import websocketPlugin from './websocket/websocket-plugin.js';
import type { WebSocketController } from './websocket/websocket-controller.js';

/** What `createKeepsake` returns: the config, the container and the fastify plugin. */
export interface Keepsake {
  /** The validated, frozen configuration. */
  readonly config: KeepsakeConfig;
  /** The awilix container of keepsake's singletons; register your controllers in it. */
  readonly container: KeepsakeContainer;
  /** The singleton controllers get injected. */
  readonly sessionManager: SessionManager;
  /** Register on your fastify app: sessions persist themselves after each controller. */
  readonly plugin: (app: FastifyInstance) => Promise<void>;
  /**
   * Register for WebSocket routes whose sockets see the session read-only and live; then declare
   * them with `app.webSocketRoute(path, controller)` or pass `routes`.
   * @example await app.register(keepsake.websocket, { routes: { '/ws': new Greeter() } });
   */
  readonly websocket: (app: FastifyInstance, options?: { routes?: Record<string, WebSocketController> }) => Promise<void>;
  /** Drains the Redis pools and disposes every singleton. */
  close(): Promise<void>;
}

/**
 * Builds keepsake from an ini file path, a validated config, or options in code.
 * @example
 * const keepsake = await createKeepsake('config/app.ini');
 * const app = Fastify();
 * await app.register(keepsake.plugin);
 * app.get('/hello', async (request) => {
 *   const session = await keepsake.sessionManager.start(request);
 *   return { name: session.data.get('name') ?? 'stranger' };
 * });
 */
export async function createKeepsake(source: string | KeepsakeConfig | KeepsakeConfigInput = {}): Promise<Keepsake> {
  const config = typeof source === 'string' ? await loadConfig(source) : 'source' in source ? (source as KeepsakeConfig) : validateConfig(source);
  const container = createKeepsakeContainer(config);
  const sessionManager = container.resolve('sessionManager');
  let closed: Promise<void> | undefined;
  return {
    config,
    container,
    sessionManager,
    plugin: fp(async (app: FastifyInstance) => app.register(sessionPlugin, { sessionManager }), { name: 'keepsake', fastify: '5.x' }),
    websocket: fp(
      async (app: FastifyInstance, options: { routes?: Record<string, WebSocketController> } = {}) =>
        app.register(websocketPlugin, { liveSessions: container.resolve('liveSessions'), routes: options.routes }),
      { name: 'keepsake-websocket', fastify: '5.x' },
    ),
    close: () => (closed ??= container.dispose()),
  };
}

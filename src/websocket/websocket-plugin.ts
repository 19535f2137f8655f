/**
 * @module The fastify plugin for WebSocket routes: @fastify/websocket on the HTTP port, an Origin
 * allow-list on the handshake (cross-site WebSocket hijacking), a maximum message size, the
 * handshake cookie's session read-only and live on every socket, and a graceful shutdown that
 * closes every socket with 1001.
 */
import { debuglog } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { BadRequestError, OriginForbiddenError } from '../errors.js';
import { errorBody } from '../http/error-replies.js';
import { SESSION_DECORATORS } from '../http/session-decorators.js';
import type { Handshake, LiveSessions } from './live-sessions.js';
import type { WebSocketController } from './websocket-controller.js';
import { importFastifyWebsocket, useAppWebsocket } from './fastify-websocket.js';

const trace = debuglog('keepsake');

const kHandshake = Symbol.for('keepsake.wsHandshake');

export interface WebSocketPluginOptions {
  /** The node's LiveSessions singleton (`container.cradle.liveSessions`). */
  liveSessions: LiveSessions;
  /** Routes to declare at once, path → controller (more with `app.webSocketRoute`). */
  routes?: Record<string, WebSocketController>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Declares a WebSocket route served by `controller` (GET `path` with an Upgrade header;
     * a plain GET gets 426).
     * @example app.webSocketRoute('/ws', container.cradle.liveSocket);
     */
    webSocketRoute(path: string, controller: WebSocketController): FastifyInstance;
  }
}

async function websocketPlugin(app: FastifyInstance, { liveSessions, routes = {} }: WebSocketPluginOptions): Promise<void> {
  const server = liveSessions.config.server;
  const allowed = new Set(server.ws_allowed_origins.map(normalizeOrigin));
  const anyOrigin = allowed.has('*');

  // An app that registered @fastify/websocket itself keeps it (a second copy would be a
  // duplicate-decorator error); keepsake's sockets still close with 1001 on app.close().
  if (app.hasDecorator('websocketServer')) {
    useAppWebsocket(app, server.ws_max_message_bytes);
    app.addHook('preClose', async () => liveSessions.shutdown());
  } else {
    await app.register(await importFastifyWebsocket(), {
      // ws closes a socket whose message is larger with 1009 (RFC 6455 "message too big").
      options: { maxPayload: server.ws_max_message_bytes, clientTracking: false },
      // Socket errors reach the controller's onError through LiveSessions; ws closes the socket
      // itself (1009 above maxPayload): terminating here would cut that close frame off.
      errorHandler: (error) => trace('websocket: %s', error.message),
      preClose: async () => liveSessions.shutdown(),
    });
  }
  app.decorateRequest(kHandshake, null);

  const checkOrigin = (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const origin = request.headers.origin;
    // No Origin header: not a browser (a browser always sends one on a WebSocket handshake).
    if (!request.ws || origin === undefined || anyOrigin || allowed.has(normalizeOrigin(origin)) || isSameOrigin(origin, request.headers.host)) return done();
    trace('websocket handshake from origin %s refused (server.ws_allowed_origins)', origin);
    void reply.code(403).send(errorBody(new OriginForbiddenError(origin)));
  };

  app.decorate('webSocketRoute', function webSocketRoute(this: FastifyInstance, path: string, controller: WebSocketController) {
    this.route({
      method: 'GET',
      url: path,
      onRequest: checkOrigin,
      preHandler: async (request: FastifyRequest) => {
        if (request.ws) setHandshake(request, await liveSessions.handshake(request.headers.cookie));
      },
      handler: async (_request, reply) => {
        return reply.code(426).header('upgrade', 'websocket').send(errorBody(new BadRequestError(426, `${path} is a WebSocket route: send a WebSocket handshake (Upgrade: websocket)`)));
      },
      wsHandler: (socket, request) => {
        try {
          liveSessions.open(socket, takeHandshake(request), controller);
        } catch (error) {
          trace('websocket open failed: %s', (error as Error).stack);
          socket.close(1011, 'internal error');
        }
      },
    });
    return this;
  });

  for (const [path, controller] of Object.entries(routes)) app.webSocketRoute(path, controller);
}

function setHandshake(request: FastifyRequest, handshake: Handshake): void {
  (request as unknown as Record<symbol, Handshake>)[kHandshake] = handshake;
  // If the client leaves before the upgrade, no socket will release the notices recorded for it.
  request.raw.socket.once('close', handshake.release);
}

/** The handshake of `request`, dropped from it (the request lives as long as its socket). */
function takeHandshake(request: FastifyRequest): Handshake {
  const slot = request as unknown as Record<symbol, Handshake | null>;
  const handshake = slot[kHandshake]!;
  slot[kHandshake] = null;
  return handshake;
}

/**
 * The page's own origin: the Origin's host and port are the request's Host (a page served by
 * this server opening its own /ws), allowed whatever ws_allowed_origins says.
 */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

/** Origins compare as browsers send them: lowercase scheme and host, no trailing slash. */
function normalizeOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, '').toLowerCase();
}

/**
 * Registers WebSocket routes on a fastify app.
 * @example
 * await app.register(websocketPlugin, { liveSessions: container.cradle.liveSessions, routes: { '/ws': greeter } });
 */
export default fp(websocketPlugin, { name: 'keepsake-websocket', fastify: '5.x', dependencies: ['keepsake-session'], decorators: SESSION_DECORATORS });
export { websocketPlugin };

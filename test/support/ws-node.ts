/**
 * One app node as a library user builds it (public API only): the session plugin, the websocket
 * plugin with `controller` on `/live`, and two routes that change the session: `POST /name` and
 * `POST /login`.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { createKeepsakeContainer, sessionPlugin, websocketPlugin, type KeepsakeConfig, type KeepsakeContainer, type KeepsakeLogger, type WebSocketController } from '../../src/index.js';

export interface WsNode {
  app: FastifyInstance;
  container: KeepsakeContainer;
  /** http://127.0.0.1:PORT */
  url: string;
}

/** Starts a listening node; the caller closes `app` (which disposes the container). */
export async function startWsNode(config: KeepsakeConfig, controller: WebSocketController, logger?: KeepsakeLogger): Promise<WsNode> {
  const container = createKeepsakeContainer(config, logger === undefined ? {} : { logger });
  const { sessionManager, liveSessions } = container.cradle;
  const app = Fastify();
  app.addHook('onClose', async () => container.dispose());
  await app.register(sessionPlugin, { sessionManager });
  await app.register(websocketPlugin, { liveSessions });
  app.webSocketRoute('/live', controller);
  app.post<{ Body: { name: string } }>('/name', async (request) => {
    (await sessionManager.start(request)).data.put('name' as never, request.body.name as never);
    return { ok: true };
  });
  app.post<{ Body: { username: string } }>('/login', async (request) => {
    await sessionManager.regenerate(request, { userId: request.body.username });
    return { ok: true };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, container, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

// src/server.ts: HTTP routes and a WebSocket route on one port, sharing the session.
import Fastify from 'fastify';
import { createKeepsake, registerErrorReplies } from 'keepsake';
import { ChatSocket } from './chat-socket.js';

const keepsake = await createKeepsake('config/app.ini');
const app = Fastify({ logger: true });
app.addHook('onClose', () => keepsake.close());
registerErrorReplies(app);
await app.register(keepsake.plugin);
await app.register(keepsake.websocket, { routes: { '/ws': new ChatSocket() } });

app.put<{ Body: { name: string } }>('/name', async (request) => {
  const session = await keepsake.sessionManager.start(request);
  session.data.put('name', request.body.name); // every socket of this session hears it, on every node
  return { name: request.body.name };
});

// Reach a user's sockets wherever they are connected. An admin route: put your own authorization in front of it.
app.post<{ Params: { user: string } }>('/admin/users/:user/kick', async (request) => {
  const registry = keepsake.container.cradle.connectionRegistry;
  await registry.sendToUser(request.params.user, { type: 'notice', text: 'You are being signed out' });
  await registry.closeUser(request.params.user); // 4401 on every node
  return { ok: true };
});

await app.listen({ host: keepsake.config.server.host, port: keepsake.config.server.port });

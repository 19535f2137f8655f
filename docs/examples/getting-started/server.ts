// src/server.ts: build the app, route to the controller, listen.
import Fastify from 'fastify';
import { createKeepsake, registerErrorReplies } from 'keepsake';
import { registerControllers } from './wiring.js';

const keepsake = await createKeepsake('config/app.ini'); // reads and validates the ini file; no Redis yet
const { greetingController } = registerControllers(keepsake.container).cradle;

const app = Fastify({ logger: true });
app.addHook('onClose', () => keepsake.close()); // added first, so it runs last: drains the Redis pools
registerErrorReplies(app); // every error as {"error": {"code": "ERR_…", "message": "…"}}
await app.register(keepsake.plugin); // stores each started session before its reply leaves

app.get('/hello', (request) => greetingController.hello(request));
app.put<{ Body: { name: string } }>(
  '/name',
  { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 64 } } } } },
  (request) => greetingController.rename(request),
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void app.close());
await app.listen({ host: keepsake.config.server.host, port: keepsake.config.server.port });

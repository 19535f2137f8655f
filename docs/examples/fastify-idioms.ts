// The README's "Configure from an object, use fastify's idioms": options in code and request.startSession().
import Fastify from 'fastify';
import { createKeepsake } from 'keepsake';

const keepsake = await createKeepsake({
  session: { cookie_name: 'shop', secrets: process.env.SESSION_SECRETS },
  redis_connection_pool: { default: { host: '127.0.0.1', port: 6379 } },
});
const app = Fastify({ logger: true });
await app.register(keepsake.plugin);
app.post('/visit', async (request) => {
  const session = await request.startSession();
  return { visits: await session.data.update('visits', (n = 0) => n + 1) };
});
app.addHook('onClose', () => keepsake.close());

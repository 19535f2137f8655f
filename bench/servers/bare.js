// Bare fastify: the same routes as the session targets, no session at all.
// /read, /write, ... return constants. This is the ceiling ("bare") every ratio
// is computed against.
//   PORT=3001 node bench/servers/bare.js
import Fastify from 'fastify';

const PORT = Number(process.env.PORT ?? 3000);

const app = Fastify({ logger: false });

app.get('/plain', async () => ({ ok: true }));
app.get('/read', async () => ({ counter: 0 }));
app.get('/write', async () => ({ counter: 1 }));
app.get('/set', async (req, reply) => {
  const { k, v } = req.query;
  if (typeof k !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(k)) return reply.code(400).send({ error: 'bad k' });
  return { ok: true, k, v: v ?? '' };
});
app.get('/blob', async (req) => {
  const kb = Math.max(0, Math.min(1024, Number(req.query.kb ?? 1) || 0));
  return { ok: true, blobLength: kb * 1024 };
});
app.get('/dump', async () => ({ data: {}, blobLength: 0 }));

await app.listen({ port: PORT, host: '127.0.0.1' });
console.log(`bare listening on ${PORT}`);

const stop = () => { app.close().finally(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

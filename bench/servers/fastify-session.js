// @fastify/cookie + @fastify/session with connect-redis' RedisStore (node-redis client).
// Library defaults except: saveUninitialized false, cookie.secure false (plain http).
// rolling stays at its default (true): every request that carries a valid cookie
// re-saves the whole session (SET ... EX).
//   PORT=3002 REDIS_PORT=6390 node bench/servers/fastify-session.js
import Fastify from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const PORT = Number(process.env.PORT ?? 3000);
const REDIS_PORT = Number(process.env.REDIS_PORT ?? 6379);
const KEY_PREFIX = process.env.KEY_PREFIX ?? 'bench:fs:';

const redis = createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } });
redis.on('error', (err) => console.error('redis error', err));
await redis.connect();

const app = Fastify({ logger: false });
await app.register(fastifyCookie);
await app.register(fastifySession, {
  secret: 'bench-secret-bench-secret-bench-secret-0123456789',
  cookieName: 'sid',
  saveUninitialized: false,
  cookie: { secure: false },
  store: new RedisStore({ client: redis, prefix: KEY_PREFIX }),
});

const RESERVED = new Set(['cookie', 'blob']);

app.get('/plain', async () => ({ ok: true }));
app.get('/read', async (req) => ({ counter: req.session.get('counter') ?? 0 }));
app.get('/write', async (req) => {
  const c = (req.session.get('counter') ?? 0) + 1;
  req.session.set('counter', c);
  return { counter: c };
});
app.get('/set', async (req, reply) => {
  const { k, v } = req.query;
  if (typeof k !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(k) || RESERVED.has(k)) return reply.code(400).send({ error: 'bad k' });
  req.session.set(k, v ?? '');
  return { ok: true };
});
app.get('/blob', async (req) => {
  const kb = Math.max(0, Math.min(1024, Number(req.query.kb ?? 1) || 0));
  req.session.set('blob', 'x'.repeat(kb * 1024));
  return { ok: true, blobLength: kb * 1024 };
});
app.get('/dump', async (req) => {
  const data = {};
  for (const key of Object.keys(req.session)) {
    if (key === 'cookie' || key === 'blob') continue;
    data[key] = req.session[key];
  }
  const blob = req.session.get('blob');
  return { data, blobLength: typeof blob === 'string' ? blob.length : 0 };
});

await app.listen({ port: PORT, host: '127.0.0.1' });
console.log(`fastify-session listening on ${PORT}`);

const stop = () => {
  app.close().then(() => redis.quit()).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

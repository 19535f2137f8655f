// express 5 + express-session + connect-redis' RedisStore (node-redis client).
// Recommended express-session settings: resave false, saveUninitialized false,
// cookie.secure false (plain http). An unmodified session is touched (EXPIRE),
// a modified one is re-saved whole (SET ... EX).
//   PORT=3003 REDIS_PORT=6390 node bench/servers/express-session.js
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const PORT = Number(process.env.PORT ?? 3000);
const REDIS_PORT = Number(process.env.REDIS_PORT ?? 6379);
const KEY_PREFIX = process.env.KEY_PREFIX ?? 'bench:es:';

const redis = createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } });
redis.on('error', (err) => console.error('redis error', err));
await redis.connect();

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(session({
  secret: 'bench-secret-bench-secret-bench-secret-0123456789',
  name: 'sid',
  resave: false,
  saveUninitialized: false,
  cookie: { secure: false },
  store: new RedisStore({ client: redis, prefix: KEY_PREFIX }),
}));

const RESERVED = new Set(['cookie', 'blob', 'id', 'req']);

app.get('/plain', (req, res) => { res.json({ ok: true }); });
app.get('/read', (req, res) => { res.json({ counter: req.session.counter ?? 0 }); });
app.get('/write', (req, res) => {
  const c = (req.session.counter ?? 0) + 1;
  req.session.counter = c;
  res.json({ counter: c });
});
app.get('/set', (req, res) => {
  const { k, v } = req.query;
  if (typeof k !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(k) || RESERVED.has(k)) {
    res.status(400).json({ error: 'bad k' });
    return;
  }
  req.session[k] = typeof v === 'string' ? v : '';
  res.json({ ok: true });
});
app.get('/blob', (req, res) => {
  const kb = Math.max(0, Math.min(1024, Number(req.query.kb ?? 1) || 0));
  req.session.blob = 'x'.repeat(kb * 1024);
  res.json({ ok: true, blobLength: kb * 1024 });
});
app.get('/dump', (req, res) => {
  const data = {};
  for (const key of Object.keys(req.session)) {
    if (key === 'cookie' || key === 'blob') continue;
    data[key] = req.session[key];
  }
  const blob = req.session.blob;
  res.json({ data, blobLength: typeof blob === 'string' ? blob.length : 0 });
});

const server = app.listen(PORT, '127.0.0.1', (err) => {
  if (err) { console.error(err); process.exit(1); }
  console.log(`express-session listening on ${PORT}`);
});
// Match fastify's keep-alive behaviour closely enough for autocannon.
server.keepAliveTimeout = 72_000;

const stop = () => {
  server.close(() => { redis.quit().finally(() => process.exit(0)); });
  server.closeAllConnections?.();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

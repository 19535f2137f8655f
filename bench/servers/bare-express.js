// Bare express 5 (opt-in target, `--targets=...,bare-express`): the same routes
// as express-session.js without the session, to tell express's own cost from
// express-session's.
//   PORT=3005 node bench/servers/bare-express.js
import express from 'express';

const PORT = Number(process.env.PORT ?? 3000);

const app = express();
app.disable('x-powered-by');
app.disable('etag');

app.get('/plain', (req, res) => { res.json({ ok: true }); });
app.get('/read', (req, res) => { res.json({ counter: 0 }); });
app.get('/write', (req, res) => { res.json({ counter: 1 }); });
app.get('/set', (req, res) => {
  const { k, v } = req.query;
  if (typeof k !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(k)) { res.status(400).json({ error: 'bad k' }); return; }
  res.json({ ok: true, k, v: typeof v === 'string' ? v : '' });
});
app.get('/blob', (req, res) => {
  const kb = Math.max(0, Math.min(1024, Number(req.query.kb ?? 1) || 0));
  res.json({ ok: true, blobLength: kb * 1024 });
});
app.get('/dump', (req, res) => { res.json({ data: {}, blobLength: 0 }); });

const server = app.listen(PORT, '127.0.0.1', (err) => {
  if (err) { console.error(err); process.exit(1); }
  console.log(`bare-express listening on ${PORT}`);
});
server.keepAliveTimeout = 72_000;

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

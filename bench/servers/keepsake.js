// keepsake (this project) target. Sessions are one Redis hash per session, lazily
// loaded, written per key. Uses the compiled library in dist/ (run `npm run build`).
//   PORT=3004 REDIS_PORT=6390 node bench/servers/keepsake.js
//
// Everything that depends on keepsake's API is in the ADAPTER block below, so a
// change of API means editing only that block. The routes themselves are the same
// as in the other targets.
import Fastify from 'fastify';

const PORT = Number(process.env.PORT ?? 3000);
const REDIS_PORT = Number(process.env.REDIS_PORT ?? 6379);
const KEY_PREFIX = process.env.KEY_PREFIX ?? 'bench:ks:';

// ---------------------------------------------------------------- ADAPTER ----
let lib;
try {
  lib = await import('../../dist/src/index.js');
} catch (err) {
  console.error('keepsake: cannot import dist/src/index.js (run `npm run build`):', err?.message ?? err);
  process.exit(2);
}
if (typeof lib.createKeepsake !== 'function') {
  console.error('keepsake: dist/src/index.js does not export createKeepsake; exports:', Object.keys(lib));
  process.exit(2);
}

// Same footing as the peers: plain-http cookie, a 32+ character secret, library
// defaults otherwise (persist = before_response, pool max 16 connections), but for
// ttl_refresh_slack = 1 (reads refresh the TTL within 1 % of the lifespan; docs/config.md),
// the setting the 2026-12-07 results were measured with.
const keepsake = await lib.createKeepsake({
  session: {
    key_prefix: KEY_PREFIX,
    cookie_name: 'dmsession',
    cookie_secure: false,
    secrets: ['bench-secret-bench-secret-bench-secret-0123456789'],
    ttl_refresh_slack: 1,
  },
  redis_connection_pool: { default: { host: '127.0.0.1', port: REDIS_PORT } },
});
const manager = keepsake.sessionManager;

/** The request's session (created lazily on first write). */
const start = (req) => manager.start(req);
/** One key; `await` works whether get() is sync or async. */
const getKey = async (s, key) => await s.data.get(key);
const putKey = async (s, key, value) => { await s.data.put(key, value); };
/** Every key of the session as a plain object. */
const allKeys = async (s) => {
  const d = s.data;
  for (const name of ['all', 'toJSON', 'toObject', 'entries']) {
    if (typeof d[name] === 'function') {
      const v = await d[name]();
      if (v instanceof Map) return Object.fromEntries(v);
      if (Array.isArray(v)) return Object.fromEntries(v);
      if (v && typeof v[Symbol.iterator] === 'function' && typeof v !== 'string') return Object.fromEntries(v);
      if (v && typeof v[Symbol.asyncIterator] === 'function') {
        const out = {};
        for await (const [k, val] of v) out[k] = val;
        return out;
      }
      return v ?? {};
    }
  }
  if (typeof d.keys === 'function') {
    const out = {};
    for (const k of await d.keys()) out[k] = await d.get(k);
    return out;
  }
  throw new Error('keepsake adapter: no way to list session keys');
};
const closeLib = () => keepsake.close?.();
const app = Fastify({ logger: false });
await app.register(keepsake.plugin);
// ------------------------------------------------------------ END ADAPTER ----

const RESERVED = new Set(['blob']);

app.get('/plain', async () => ({ ok: true }));
app.get('/read', async (req) => {
  const s = await start(req);
  return { counter: (await getKey(s, 'counter')) ?? 0 };
});
app.get('/write', async (req) => {
  const s = await start(req);
  const c = ((await getKey(s, 'counter')) ?? 0) + 1;
  await putKey(s, 'counter', c);
  return { counter: c };
});
app.get('/set', async (req, reply) => {
  const { k, v } = req.query;
  if (typeof k !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(k) || RESERVED.has(k)) return reply.code(400).send({ error: 'bad k' });
  const s = await start(req);
  await putKey(s, k, v ?? '');
  return { ok: true };
});
app.get('/blob', async (req) => {
  const kb = Math.max(0, Math.min(1024, Number(req.query.kb ?? 1) || 0));
  const s = await start(req);
  await putKey(s, 'blob', 'x'.repeat(kb * 1024));
  return { ok: true, blobLength: kb * 1024 };
});
app.get('/dump', async (req) => {
  const s = await start(req);
  const all = await allKeys(s);
  const data = {};
  for (const [key, value] of Object.entries(all)) if (key !== 'blob') data[key] = value;
  const blob = all.blob;
  return { data, blobLength: typeof blob === 'string' ? blob.length : 0 };
});

await app.listen({ port: PORT, host: '127.0.0.1' });
console.log(`keepsake listening on ${PORT}`);

const stop = () => {
  app.close().then(() => closeLib()).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

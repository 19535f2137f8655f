/**
 * Real @fastify/session and express-session apps storing their sessions through connect-redis, as
 * the apps that switch to keepsake run them (the same setup as bench/servers/), on the shared
 * Redis under a test's own prefix. `POST /seed` copies a JSON body's fields into the session;
 * `GET /dump` shows the session's fields.
 */
import type { AddressInfo } from 'node:net';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import express from 'express';
import expressSession from 'express-session';
import Fastify from 'fastify';
import { createClient } from 'redis';

export interface LegacyApp {
  readonly url: string;
  readonly cookieName: string;
  close(): Promise<void>;
}

export interface LegacyAppOptions {
  /** connect-redis's prefix (a test's own). */
  readonly prefix: string;
  /** The first signs, all verify (both libraries take arrays). */
  readonly secrets: string[];
  readonly cookieName: string;
}

async function redisClient() {
  const redis = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  redis.on('error', () => undefined);
  await redis.connect();
  return redis;
}

/** @fastify/cookie + @fastify/session + connect-redis (defaults but saveUninitialized false, plain http). */
export async function startFastifySessionApp(options: LegacyAppOptions): Promise<LegacyApp> {
  const redis = await redisClient();
  const app = Fastify({ logger: false });
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: options.secrets,
    cookieName: options.cookieName,
    saveUninitialized: false,
    cookie: { secure: false, maxAge: 86400_000 },
    store: new RedisStore({ client: redis, prefix: options.prefix }) as never,
  });
  app.post('/seed', async (request) => {
    for (const [key, value] of Object.entries(request.body as Record<string, unknown>)) request.session.set(key as never, value as never);
    return { ok: true };
  });
  app.get('/dump', async (request) => {
    const session = request.session as unknown as Record<string, unknown>;
    return Object.fromEntries(Object.keys(session).filter((key) => key !== 'cookie').map((key) => [key, session[key]]));
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cookieName: options.cookieName,
    close: async () => {
      await app.close();
      await redis.quit();
    },
  };
}

/** express 5 + express-session + connect-redis (resave false, saveUninitialized false, plain http). */
export async function startExpressSessionApp(options: LegacyAppOptions): Promise<LegacyApp> {
  const redis = await redisClient();
  const app = express();
  app.use(express.json());
  app.use(
    expressSession({
      secret: options.secrets,
      name: options.cookieName,
      resave: false,
      saveUninitialized: false,
      cookie: { secure: false, maxAge: 86400_000 },
      store: new RedisStore({ client: redis, prefix: options.prefix }),
    }),
  );
  app.post('/seed', (request, response) => {
    Object.assign(request.session, request.body as Record<string, unknown>);
    response.json({ ok: true });
  });
  app.get('/dump', (request, response) => {
    const session = request.session as unknown as Record<string, unknown>;
    response.json(Object.fromEntries(Object.keys(session).filter((key) => key !== 'cookie').map((key) => [key, session[key]])));
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cookieName: options.cookieName,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await redis.quit();
    },
  };
}

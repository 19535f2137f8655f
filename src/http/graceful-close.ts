/**
 * @module Graceful close for a listening fastify app: `app.close()` stops accepting, lets every
 * in-flight request finish, and then really ends: connections are closed as soon as their last
 * reply is out, instead of idling until the keep-alive timeout holds `close()` open.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** How often connections that became idle during close are closed. */
const SWEEP_MS = 50;

async function gracefulClosePlugin(app: FastifyInstance): Promise<void> {
  let closing = false;
  let sweep: NodeJS.Timeout | undefined;

  app.addHook('preClose', (done: () => void) => {
    closing = true;
    // Node closes the connections idle when close() begins; requests in flight leave theirs
    // idle later, and those would keep close() waiting for keepAliveTimeout.
    sweep = setInterval(() => app.server.closeIdleConnections(), SWEEP_MS);
    sweep.unref();
    done();
  });

  // Replies sent while closing tell keep-alive clients not to reuse the connection.
  app.addHook('onSend', (_request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onClose', (_instance: FastifyInstance, done: () => void) => {
    clearInterval(sweep);
    done();
  });
}

/** `await app.register(gracefulClose)`: `app.close()` finishes in-flight requests, then ends promptly. */
export default fp(gracefulClosePlugin, { name: 'keepsake-graceful-close', fastify: '5.x' });
export { gracefulClosePlugin };

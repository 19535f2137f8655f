/**
 * @module The fastify plugin that makes sessions persist themselves.
 *
 * Every request gets an empty slot (no work at all until a controller calls `start`). After the
 * controller, `onSend` persists the sessions it started and sets the cookie, before the reply
 * leaves (`persist = before_response`), so the client's next request reads its own writes. A
 * persist that fails turns the reply into a 503: never a 2xx for data that was not stored.
 * With `persist = after_response` the write happens in `onResponse` (a failure is logged and
 * counted; the client already has its reply), except that a new session is created (metadata
 * only) before the reply, so its cookie never names a session the store does not know.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { InternalError, KeepsakeError, SessionStoreUnavailableError } from '../errors.js';
import { kSessionState, type RequestSessionState, type SessionManager } from '../session/session-manager.js';
import { errorBody } from './error-replies.js';
import { attachAppLogger } from '../logging/app-logger.js';
import { warnAtStart } from '../logging/development-warnings.js';
import { decorateSessions } from './session-decorators.js';
import { registerKeepLifespanRoutes } from './keep-lifespan-routes.js';

export interface SessionPluginOptions {
  sessionManager: SessionManager;
}

async function sessionPlugin(app: FastifyInstance, { sessionManager }: SessionPluginOptions): Promise<void> {
  const afterResponse = sessionManager.config.session.persist === 'after_response';
  app.decorateRequest(kSessionState, null);
  decorateSessions(app, sessionManager);
  attachAppLogger(sessionManager.logger, app.log);
  warnAtStart(app, sessionManager.config);
  registerKeepLifespanRoutes(app);

  // Runs on every reply of every route: callback style, so a route that never started a session
  // costs one property read (no promise, no closure).
  app.addHook('onSend', (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: Error | null, payload?: unknown) => void) => {
    const state = sessionManager.stateOf(request);
    // No session started, or Redis already failed this request (onError below): nothing to do.
    if (state === null || state.storeFailed) {
      done(null, payload);
      return;
    }
    const session = state.session;
    // after_response still creates a new session before its cookie leaves (metadata only): a
    // quick next request must find it, not start another one.
    const mustCreate = afterResponse && session !== null && session.fresh && !state.destroyed;
    if (state.opening === null && !mustCreate && (afterResponse || session === null || state.destroyed || !sessionManager.mayPersist(session))) {
      // Nothing to write (a route that only read): the cookie, if any, and no promise.
      const cookie = sessionManager.outgoingCookie(state);
      if (cookie !== undefined) reply.header('set-cookie', cookie);
      if (state.legacyCookie !== undefined) reply.header('set-cookie', state.legacyCookie); // fastify appends Set-Cookie
      done(null, payload);
      return;
    }
    finish(request, reply, payload, state).then((sent) => done(null, sent), done);
  });

  // A controller's Redis failure (say, update() timing out) is the reply: the persist must not
  // wait on the same Redis a second time. Runs only for errors, never on the happy path.
  app.addHook('onError', (request: FastifyRequest, _reply: FastifyReply, error: Error, done: () => void) => {
    const state = error instanceof SessionStoreUnavailableError ? sessionManager.stateOf(request) : null;
    if (state !== null) state.storeFailed = true;
    done();
  });

  /** Persists what the request's session changed and sets the cookie; the payload to send. */
  async function finish(request: FastifyRequest, reply: FastifyReply, payload: unknown, state: RequestSessionState): Promise<unknown> {
    if (state.opening !== null) await state.opening.catch(() => undefined);
    if (state.session !== null && !state.destroyed) {
      try {
        if (!afterResponse) await sessionManager.persist(state.session);
        else await sessionManager.create(state.session);
      } catch (error) {
        // after_response: a session whose creation failed gets no late write either (no cookie names it).
        state.storeFailed = true;
        const failure = error instanceof KeepsakeError ? error : new InternalError({ cause: error });
        request.log.error({ err: error }, 'session persist failed; the reply becomes an error');
        reply.code(failure.statusCode).header('content-type', 'application/json; charset=utf-8');
        if ('retryAfterSeconds' in failure) reply.header('retry-after', String(failure.retryAfterSeconds));
        reply.removeHeader('content-length');
        return JSON.stringify(errorBody(failure));
      }
    }
    const cookie = sessionManager.outgoingCookie(state);
    if (cookie !== undefined) reply.header('set-cookie', cookie);
    if (state.legacyCookie !== undefined) reply.header('set-cookie', state.legacyCookie);
    return payload;
  }

  if (afterResponse) {
    // The reply is already out, so the server may finish closing before these writes do: close
    // waits for them (this hook is registered before the app's pool shutdown, so it runs first).
    const late = new Set<Promise<void>>();
    app.addHook('onResponse', async (request: FastifyRequest) => {
      const state = sessionManager.stateOf(request);
      if (state?.session == null || state.destroyed || state.storeFailed) return;
      const writing = sessionManager.persist(state.session).catch((error: unknown) => {
        request.log.error({ err: error }, 'session persist after the response failed (persist = after_response)');
      });
      late.add(writing);
      await writing;
      late.delete(writing);
    });
    app.addHook('onClose', async () => {
      await Promise.all(late);
    });
  }
}

/** Registers keepsake on a fastify app: `await app.register(sessionPlugin, { sessionManager })`. */
export default fp(sessionPlugin, { name: 'keepsake-session', fastify: '5.x' });
export { sessionPlugin };

/**
 * @module Every error leaves as `{"error": {"code": "ERR_…", "message": "…"}}` with a fitting
 * status, fastify's own errors included (unknown route, bad JSON, wrong content type).
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { BadRequestError, BodyTooLargeError, InternalError, KeepsakeError, NotFoundError, UnsupportedMediaTypeError, ValidationError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string };
}

/** The body every error reply has: `{"error": {"code": "ERR_…", "message": "…"}}`. */
export function errorBody(error: KeepsakeError): ErrorBody {
  return { error: { code: error.code, message: error.message } };
}

/** Maps any error a route or fastify raised to keepsake's catalog. */
export function toKeepsakeError(error: FastifyError | Error, contentType?: string): KeepsakeError {
  if (error instanceof KeepsakeError) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return new ValidationError(fastifyError.message);
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(contentType);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ValidationError(`request body is not valid JSON: ${fastifyError.message}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLargeError(fastifyError.message);
  }
  if (fastifyError.statusCode === 404) return new NotFoundError(fastifyError.message);
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new BadRequestError(fastifyError.statusCode, fastifyError.message);
  }
  return new InternalError({ cause: error });
}

/**
 * Installs the error and not-found handlers on `app` (and every plugin without its own): every
 * error is answered with its status and `errorBody`, a 503 with `Retry-After`.
 * @example
 * const app = Fastify();
 * registerErrorReplies(app);
 * await app.register(keepsake.plugin);
 */
export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const failure = toKeepsakeError(error, request.headers['content-type']);
    if (failure.statusCode >= 500) request.log.error({ err: error }, failure.message);
    if ('retryAfterSeconds' in failure) void reply.header('retry-after', String(failure.retryAfterSeconds));
    return reply.code(failure.statusCode).send(errorBody(failure));
  });
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send(errorBody(new NotFoundError(`no route ${request.method} ${request.url.split('?')[0]}`)));
  });
}

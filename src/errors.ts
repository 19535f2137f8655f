/**
 * @module The one catalog of keepsake's errors. Every error has a stable `code` (documented in
 * docs/errors.md, checked by a test) and, where a request can cause it, an HTTP `statusCode`.
 */

/** Base class: every error keepsake throws on purpose is a KeepsakeError. */
export class KeepsakeError extends Error {
  /** Stable machine-readable code, always starting with `ERR_`. */
  readonly code: string;
  /** The HTTP status a reply caused by this error gets. */
  readonly statusCode: number;

  constructor(code: string, statusCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.statusCode = statusCode;
  }
}

/** The ini file is unreadable or invalid: names the file, section, key and what was expected. */
export class ConfigError extends KeepsakeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG_INVALID', 500, message, options);
  }
}

/** Redis could not be reached (pool, connection or command) within the configured bounds. */
export class SessionStoreUnavailableError extends KeepsakeError {
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  readonly retryAfterSeconds = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SESSION_STORE_UNAVAILABLE', 503, message, options);
  }
}

/**
 * Another request (on this node or another) is adopting the same legacy session and did not
 * finish within the wait: retry, the next request joins the session it made.
 */
export class LegacyAdoptionPendingError extends SessionStoreUnavailableError {
  constructor(waitedMs: number) {
    super(`another request is adopting this visitor's legacy session and has not finished after ${waitedMs} ms; retry (no second session is made)`);
  }
}

/**
 * An `update()` kept losing its compare-and-set race until the request's time budget ran out, or
 * (`queued`) the budget ran out while it waited behind other updates of the key: nothing written.
 */
export class SessionConflictError extends KeepsakeError {
  constructor(key: string, attempts: number, { queued = false }: { queued?: boolean } = {}) {
    super(
      'ERR_SESSION_CONFLICT',
      409,
      queued
        ? `session key '${key}' is busy: update() waited behind other updates of it for session.update_timeout_ms and was not sent`
        : `session key '${key}' kept changing under update(); gave up after ${attempts} attempts`,
    );
  }
}

/** A persist would make the session's data fields exceed `session.max_session_bytes`. */
export class SessionTooLargeError extends KeepsakeError {
  constructor(bytes: number, limit: number) {
    super('ERR_SESSION_TOO_LARGE', 413, `session data would be ${bytes} bytes, above session.max_session_bytes = ${limit}; nothing was written`);
  }
}

/** A write through the read-only view a WebSocket route gets. */
export class SessionReadOnlyError extends KeepsakeError {
  constructor(operation: string, key?: string) {
    super('ERR_SESSION_READ_ONLY', 409, `session is read-only here: ${operation}${key === undefined ? '' : `('${key}')`} is not allowed on a WebSocket route's session`);
  }
}

/** A session key that is not a usable field name. */
export class SessionKeyError extends KeepsakeError {
  constructor(key: unknown, why: string) {
    super('ERR_SESSION_KEY_INVALID', 500, `session key ${JSON.stringify(String(key)).slice(0, 80)} is invalid: ${why}`);
  }
}

/** A login's `lifespan` that is not a whole number of seconds from 1 to 400 days (browsers cap Max-Age there). Nothing is changed. */
export class SessionLifespanError extends KeepsakeError {
  constructor(lifespan: unknown) {
    super('ERR_SESSION_LIFESPAN_INVALID', 500, `regenerate({ lifespan: ${JSON.stringify(String(lifespan)).slice(0, 40)} }) is invalid: a whole number of seconds from 1 to 34560000 (400 days) is needed; nothing was changed`);
  }
}

/** A value msgpackr cannot round-trip (a function, a symbol, ...). Nothing is stored. */
export class SessionValueError extends KeepsakeError {
  constructor(key: string, value: unknown, options?: { cause?: unknown }) {
    super('ERR_SESSION_VALUE_INVALID', 500, `session value for key '${key}' cannot be stored: ${describe(value)} does not survive msgpack encoding`, options);
  }
}

/** The session was destroyed (logout, expiry, CLI) while this request was using it. */
export class SessionGoneError extends KeepsakeError {
  constructor() {
    super('ERR_SESSION_GONE', 409, 'the session ended (logged out or expired) while this request was using it; nothing was written');
  }
}

/** `start`/`restore` was called on a request of an app that did not register the keepsake plugin. */
export class SessionPluginMissingError extends KeepsakeError {
  constructor() {
    super('ERR_SESSION_PLUGIN_MISSING', 500, 'SessionManager.start(request) needs the keepsake fastify plugin: await app.register(keepsake.plugin)');
  }
}

/** A request body or parameter failed validation. */
export class ValidationError extends KeepsakeError {
  constructor(message: string) {
    super('ERR_VALIDATION', 400, message);
  }
}

/** No such route or resource. */
export class NotFoundError extends KeepsakeError {
  constructor(message: string) {
    super('ERR_NOT_FOUND', 404, message);
  }
}

/** A route for logged-in users asked without a login. */
export class NotAuthenticatedError extends KeepsakeError {
  constructor(message = 'log in first: this route shows a logged-in user\'s devices') {
    super('ERR_NOT_AUTHENTICATED', 401, message);
  }
}

/** A request body with a content type the route does not accept. */
export class UnsupportedMediaTypeError extends KeepsakeError {
  constructor(contentType: string | undefined) {
    super('ERR_UNSUPPORTED_MEDIA_TYPE', 415, `content type ${contentType === undefined ? '(none)' : `'${contentType}'`} is not supported; send application/json`);
  }
}

/** A request body larger than the server accepts. */
export class BodyTooLargeError extends KeepsakeError {
  constructor(message: string) {
    super('ERR_BODY_TOO_LARGE', 413, message);
  }
}

/** Any other client error fastify raised (a malformed request). */
export class BadRequestError extends KeepsakeError {
  constructor(statusCode: number, message: string) {
    super('ERR_BAD_REQUEST', statusCode, message);
  }
}

/** A WebSocket handshake from a browser page whose Origin is not in `server.ws_allowed_origins`. */
export class OriginForbiddenError extends KeepsakeError {
  constructor(origin: string) {
    super('ERR_ORIGIN_FORBIDDEN', 403, `origin '${origin.slice(0, 200)}' is not in server.ws_allowed_origins`);
  }
}

/** A WebSocket message the route does not understand. */
export class BadMessageError extends KeepsakeError {
  constructor(message: string) {
    super('ERR_BAD_MESSAGE', 400, message);
  }
}

/**
 * A WebSocket close code or reason the protocol does not allow (RFC 6455 7.4, 5.5: a reason fits
 * a 125-byte control frame with the code). Refused where it is given, before any node sees it.
 */
export class WebSocketCloseError extends KeepsakeError {
  constructor(message: string) {
    super('ERR_WS_CLOSE_INVALID', 500, message);
  }
}

/** An unexpected fault; the body never leaks internals. */
export class InternalError extends KeepsakeError {
  constructor(options?: { cause?: unknown }) {
    super('ERR_INTERNAL', 500, 'internal server error', options);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return `the bigint ${value}`;
  const text = (() => {
    try {
      return JSON.stringify(value);
    } catch {
      return undefined;
    }
  })();
  const name = value !== null && typeof value === 'object' ? value.constructor?.name ?? 'object' : typeof value;
  return text === undefined ? `a ${name}` : `a ${name} ${text.slice(0, 60)}`;
}

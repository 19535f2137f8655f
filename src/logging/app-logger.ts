/**
 * @module The logger keepsake's singletons share: built before the fastify app exists, it forwards
 * to the app's pino logger once keepsake's plugin is registered (until then, to `consoleLogger`).
 */
import { consoleLogger, type KeepsakeLogger } from '../logger.js';

export class AppLogger implements KeepsakeLogger {
  #target: KeepsakeLogger;

  constructor(target: KeepsakeLogger = consoleLogger) {
    this.#target = target;
  }

  /** From now on, every line goes to `target` (fastify's `app.log`). */
  use(target: KeepsakeLogger): void {
    this.#target = target;
  }

  debug(object: Record<string, unknown>, message: string): void {
    this.#target.debug(object, message);
  }
  info(object: Record<string, unknown>, message: string): void {
    this.#target.info(object, message);
  }
  warn(object: Record<string, unknown>, message: string): void {
    this.#target.warn(object, message);
  }
  error(object: Record<string, unknown>, message: string): void {
    this.#target.error(object, message);
  }
}

/** Points keepsake's shared logger at the app's (a logger the app passed itself is kept). */
export function attachAppLogger(logger: KeepsakeLogger, appLog: KeepsakeLogger): void {
  if (logger instanceof AppLogger) logger.use(appLog);
}

/** The request's child logger (fastify's `request.log`, with its reqId) when there is one. */
export function requestLogger(request: object, fallback: KeepsakeLogger): KeepsakeLogger {
  const log = (request as { log?: Partial<KeepsakeLogger> }).log;
  return typeof log?.debug === 'function' && typeof log.warn === 'function' ? (log as KeepsakeLogger) : fallback;
}

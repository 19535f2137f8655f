/**
 * @module The logger keepsake reports to below the HTTP layer (corrupt bytes in Redis, rejected
 * cookies). Pino-compatible: fastify's `app.log` fits as it is; the default writes warnings and
 * errors to stderr and traces the rest with `NODE_DEBUG=keepsake`.
 */
import { debuglog } from 'node:util';

/** What keepsake logs through: pino's `(object, message)` calling convention. */
export interface KeepsakeLogger {
  debug(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

const trace = debuglog('keepsake');

/** The default: warnings and errors on stderr (one line each), debug through `NODE_DEBUG=keepsake`. */
export const consoleLogger: KeepsakeLogger = {
  debug: (object, message) => trace('%s %j', message, object),
  info: (object, message) => trace('%s %j', message, object),
  warn: (object, message) => console.warn(`keepsake: ${message} ${JSON.stringify(object, errorFields)}`),
  error: (object, message) => console.error(`keepsake: ${message} ${JSON.stringify(object, errorFields)}`),
};

function errorFields(_key: string, value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message } : value;
}

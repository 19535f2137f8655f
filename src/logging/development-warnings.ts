/**
 * @module Outside production keepsake starts with settings that are fine on a laptop and unsafe
 * anywhere else (NODE_ENV=production refuses the first and fixes the second); said once, at start.
 */
import type { FastifyInstance } from 'fastify';
import type { KeepsakeConfig } from '../config/schema.js';
import { DEV_SECRET } from '../config/schema.js';
import type { KeepsakeLogger } from '../logger.js';

export function warnDevelopmentSettings(config: KeepsakeConfig, logger: KeepsakeLogger, env: NodeJS.ProcessEnv = process.env): void {
  if (env.NODE_ENV === 'production') return;
  if (config.session.secrets.includes(DEV_SECRET)) {
    logger.warn({ key: 'session.secrets' }, 'keepsake: development settings: cookies are signed with the built-in development secret; set SESSION_SECRETS (or session.secrets) to secrets of your own before deploying (refused with NODE_ENV=production)');
  }
  const secure = config.session.cookie_secure === 'auto' ? false : config.session.cookie_secure;
  if (!secure) {
    logger.warn({ key: 'session.cookie_secure', value: config.session.cookie_secure }, 'keepsake: development settings: the session cookie is sent without Secure (cookie_secure = auto outside NODE_ENV=production, or false); over plain HTTP anyone on the path can read it');
  }
}

/**
 * Warns once the app listens (a server that fails to start has nothing to warn about), just after
 * listen() returns: a caller may hold its logs back while listening, as `keepsake serve` does.
 */
export function warnAtStart(app: FastifyInstance, config: KeepsakeConfig): void {
  app.addHook('onListen', (done) => {
    setImmediate(() => warnDevelopmentSettings(config, app.log));
    done();
  });
}

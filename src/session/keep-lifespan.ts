/**
 * @module The mark a request carries when its route must not extend the session's life (set by
 * the fastify plugin, read by the manager, which knows nothing of fastify's route options).
 */
export const kKeepLifespan = Symbol.for('keepsake.keepLifespan');

/** True when `request`'s route was declared with `extendSession: false`. */
export function keepsLifespan(request: object): boolean {
  return (request as Record<symbol, unknown>)[kKeepLifespan] === true;
}

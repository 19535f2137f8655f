/**
 * @module Liveness (no Redis at all) and readiness (every pool answers a PING in time).
 */
import type { FastifyReply } from 'fastify';
import type { RedisPools } from '../../src/index.js';

export class HealthController {
  constructor(private readonly pools: RedisPools) {}

  health() {
    return { status: 'ok' };
  }

  async ready(_request: unknown, reply: FastifyReply) {
    const answers = await Promise.all(this.pools.all().map((pool) => pool.ping()));
    return answers.every(Boolean) ? { status: 'ready' } : reply.code(503).send({ status: 'unavailable' });
  }
}

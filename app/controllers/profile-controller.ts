/**
 * @module The visitor's name, and the session view.
 */
import type { FastifyRequest } from 'fastify';
import type { SessionManager } from '../../src/index.js';
import { sessionView } from '../session-view.js';

export class ProfileController {
  constructor(private readonly sessions: SessionManager) {}

  async show(request: FastifyRequest) {
    return sessionView(await this.sessions.start(request));
  }

  async rename(request: FastifyRequest<{ Body: { name: string } }>) {
    const session = await this.sessions.start(request);
    session.data.put('name', request.body.name); // persisted before the reply leaves
    return { name: request.body.name };
  }
}

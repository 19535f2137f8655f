/**
 * @module Login (a new session id bound to the user) and logout (the session ends everywhere).
 */
import type { FastifyRequest } from 'fastify';
import type { SessionManager } from '../../src/index.js';
import { sessionView } from '../session-view.js';

export class AuthController {
  constructor(private readonly sessions: SessionManager) {}

  /** Demo only: no password. Regenerating the id on login prevents session fixation. */
  async login(request: FastifyRequest<{ Body: { username: string } }>) {
    const session = await this.sessions.regenerate(request, { userId: request.body.username });
    return sessionView(session);
  }

  async logout(request: FastifyRequest) {
    await this.sessions.destroy(request);
    return { ok: true };
  }
}

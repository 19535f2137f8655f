// src/auth-controller.ts: a new session id on login, the session gone on logout.
import type { FastifyRequest } from 'fastify';
import type { SessionManager } from 'keepsake';

export class AuthController {
  constructor(private readonly sessions: SessionManager) {}

  async login(request: FastifyRequest<{ Body: { username: string; password: string } }>) {
    const { username, password } = request.body;
    if (!(await checkPassword(username, password))) return { authenticated: false };
    // New id (the old cookie stops working), data carried over, user bound, new cookie set.
    const session = await this.sessions.regenerate(request, { userId: username });
    return { user: session.user, authenticated: session.authenticated };
  }

  async logout(request: FastifyRequest) {
    await this.sessions.destroy(request); // Redis data gone, cookie cleared, its sockets closed with 4401
    return { ok: true };
  }

  async changePassword(request: FastifyRequest<{ Body: { password: string } }>) {
    const session = await this.sessions.start(request);
    if (!session.authenticated) return { ok: false };
    await savePassword(session.user, request.body.password);
    const ended = await this.sessions.destroyUser(session.user); // every session of this user, on every node
    return { ok: true, ended };
  }
}

async function checkPassword(username: string, password: string): Promise<boolean> {
  return username.length > 0 && password.length >= 8;
}

async function savePassword(_user: string, _password: string): Promise<void> {}

// src/greeting-controller.ts: your first controller.
import type { FastifyRequest } from 'fastify';
import type { SessionManager } from 'keepsake';

export class GreetingController {
  constructor(private readonly sessions: SessionManager) {}

  /** GET /hello: greets the visitor and counts their visits. */
  async hello(request: FastifyRequest) {
    const session = await this.sessions.start(request); // loads the cookie's session, or makes a new one (no Redis yet)
    const visits = await session.data.update('visits', (n = 0) => n + 1); // atomic, stored at once
    return { hello: session.data.get('name') ?? 'stranger', visits };
  }

  /** PUT /name {"name": "Ada"}: remembers the visitor's name. */
  async rename(request: FastifyRequest<{ Body: { name: string } }>) {
    const session = await this.sessions.start(request);
    session.data.put('name', request.body.name); // stored after this returns, before the reply leaves
    return { name: request.body.name };
  }
}

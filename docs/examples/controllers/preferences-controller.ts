// src/preferences-controller.ts: plain reads and writes, a nested change, flash values and an early persist.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SessionManager } from 'keepsake';

export class PreferencesController {
  constructor(private readonly sessions: SessionManager) {}

  async show(request: FastifyRequest) {
    const session = await this.sessions.start(request);
    // What the previous request flashed; gone after this request, read or not.
    return { theme: session.data.get('theme') ?? 'light', notice: session.flashed('notice') ?? null };
  }

  /** A route that only looks: restore() never creates a session and never sets a cookie. */
  async theme(request: FastifyRequest) {
    const session = await this.sessions.restore(request);
    return { theme: session?.data.get('theme') ?? 'light' };
  }

  async save(request: FastifyRequest<{ Body: { theme: 'light' | 'dark' } }>, reply: FastifyReply) {
    const session = await this.sessions.start(request);
    session.data.put('theme', request.body.theme);
    session.flash('notice', 'Preferences saved'); // readable by the next request only
    return reply.redirect('/preferences', 303);
  }

  async renameFirstItem(request: FastifyRequest<{ Body: { sku: string } }>) {
    const session = await this.sessions.start(request);
    const basket = session.data.get('basket');
    if (basket?.[0] !== undefined) basket[0].sku = request.body.sku; // a nested change counts: it is persisted too
    return { items: basket ?? [] };
  }

  async export(request: FastifyRequest) {
    const session = await this.sessions.start(request);
    session.data.put('name', 'exported');
    await this.sessions.persistSession(request); // stored now, before the slow work below
    await slowExport(session.data.toJSON());
    return { keys: session.data.keys() };
  }
}

async function slowExport(data: Record<string, unknown>): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 10, data));
}

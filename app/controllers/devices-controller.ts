/**
 * @module A logged-in user's devices (DEMO-APP.md, "Devices"): list them, end one, end the others.
 */
import type { FastifyRequest } from 'fastify';
import { NotAuthenticatedError, NotFoundError, type Device, type Session, type SessionManager } from '../../src/index.js';

export class DevicesController {
  constructor(private readonly sessions: SessionManager) {}

  async list(request: FastifyRequest): Promise<{ devices: Device[] }> {
    const session = await this.#loggedIn(request);
    return { devices: await this.sessions.listDevices(session.meta.userId!, session.id) };
  }

  /** Ends the device `handle` names; the current one is a logout. */
  async revoke(request: FastifyRequest<{ Params: { handle: string } }>): Promise<{ devices: Device[] }> {
    const session = await this.#loggedIn(request);
    const userId = session.meta.userId!;
    const devices = await this.sessions.listDevices(userId, session.id);
    const target = devices.find((device) => device.handle === request.params.handle);
    if (target === undefined) throw notYours(request.params.handle);
    if (target.current) {
      await this.sessions.destroy(request);
      return { devices: devices.filter((device) => !device.current) };
    }
    // Ended meanwhile (by another request, or expired): as good as not there.
    if (!(await this.sessions.revokeDevice(userId, target.handle))) throw notYours(request.params.handle);
    return { devices: await this.sessions.listDevices(userId, session.id) };
  }

  async revokeOthers(request: FastifyRequest): Promise<{ devices: Device[] }> {
    const session = await this.#loggedIn(request);
    await this.sessions.revokeOtherDevices(session.meta.userId!, session.id);
    return { devices: await this.sessions.listDevices(session.meta.userId!, session.id) };
  }

  async #loggedIn(request: FastifyRequest): Promise<Session> {
    const session = await this.sessions.start(request);
    if (!session.authenticated) throw new NotAuthenticatedError();
    return session;
  }
}

function notYours(handle: string): NotFoundError {
  return new NotFoundError(`no device of yours has handle '${handle.slice(0, 64)}'`);
}

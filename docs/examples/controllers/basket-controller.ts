// src/basket-controller.ts: start → modify → persist, with update() where requests race.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError, type SessionManager } from 'keepsake';
import type { Item } from './session-values.js';

export class BasketController {
  constructor(private readonly sessions: SessionManager) {}

  async list(request: FastifyRequest) {
    const session = await this.sessions.start(request);
    return { items: session.data.get('basket') ?? [] };
  }

  async add(request: FastifyRequest<{ Body: Item }>, reply: FastifyReply) {
    const session = await this.sessions.start(request);
    const { sku, qty } = request.body;
    // Atomic read-modify-write of one key, stored now; fn may run again on a fresher value.
    const items = await session.data.update('basket', (items = []) => {
      const existing = items.find((item) => item.sku === sku);
      if (existing === undefined) return [...items, { sku, qty }];
      return items.map((item) => (item.sku === sku ? { sku, qty: item.qty + qty } : item));
    });
    return reply.code(201).send({ items });
  }

  async remove(request: FastifyRequest<{ Params: { sku: string } }>) {
    const session = await this.sessions.start(request);
    const { sku } = request.params;
    const items = await session.data.update('basket', (items = []) => {
      // Throwing aborts the update: nothing is written, the error reaches fastify (404 here).
      if (!items.some((item) => item.sku === sku)) throw new NotFoundError(`sku '${sku}' is not in the basket`);
      return items.filter((item) => item.sku !== sku);
    });
    return { items };
  }

  async empty(request: FastifyRequest) {
    const session = await this.sessions.start(request);
    session.data.delete('basket'); // written by the automatic persist, before the reply
    return { items: [] };
  }
}

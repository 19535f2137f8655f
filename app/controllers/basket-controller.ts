/**
 * @module The basket: concurrent adds from one client all survive (update() is atomic per key).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError, ValidationError, type SessionManager } from '../../src/index.js';
import { MAX_QTY, type Item } from '../schemas.js';
import '../session-values.js';

export class BasketController {
  constructor(private readonly sessions: SessionManager) {}

  async list(request: FastifyRequest) {
    const session = await this.sessions.start(request);
    return { items: session.data.get('basket') ?? [] };
  }

  async addItem(request: FastifyRequest<{ Body: Item }>, reply: FastifyReply) {
    const session = await this.sessions.start(request);
    const { sku, qty } = request.body;
    const items = await session.data.update('basket', (items = []) => addQty(items, sku, qty));
    return reply.code(201).send({ items });
  }

  async removeItem(request: FastifyRequest<{ Params: { sku: string } }>) {
    const session = await this.sessions.start(request);
    const { sku } = request.params;
    const items = await session.data.update('basket', (items = []) => {
      if (!items.some((item) => item.sku === sku)) throw new NotFoundError(`sku '${sku}' is not in the basket`);
      return items.filter((item) => item.sku !== sku);
    });
    return { items };
  }
}

function addQty(items: Item[], sku: string, qty: number): Item[] {
  const existing = items.find((item) => item.sku === sku);
  const total = (existing?.qty ?? 0) + qty;
  if (total > MAX_QTY) throw new ValidationError(`qty: sku '${sku}' would reach ${total}, at most ${MAX_QTY} allowed`);
  return existing ? items.map((item) => (item.sku === sku ? { sku, qty: total } : item)) : [...items, { sku, qty }];
}

/**
 * @module The demo's HTTP routes (DEMO-APP.md is the contract), each handled by a controller.
 */
import type { FastifyInstance } from 'fastify';
import type { DemoCradle } from './wiring.js';
import { handleParamsSchema, itemSchema, loginSchema, nameSchema, skuParamsSchema } from './schemas.js';

export function registerRoutes(app: FastifyInstance, controllers: DemoCradle): void {
  const { healthController: health, profileController: profile, basketController: basket, authController: auth, devicesController: devices } = controllers;
  app.get('/health', () => health.health());
  app.get('/ready', (request, reply) => health.ready(request, reply));
  app.get('/metrics', async (_request, reply) => reply.type(controllers.metrics.contentType).send(await controllers.metrics.render()));
  app.get('/api/session', (request) => profile.show(request));
  app.put('/api/name', { schema: { body: nameSchema } }, (request) => profile.rename(request as never));
  app.get('/api/basket', (request) => basket.list(request));
  app.post('/api/basket/items', { schema: { body: itemSchema } }, (request, reply) => basket.addItem(request as never, reply));
  app.delete('/api/basket/items/:sku', { schema: { params: skuParamsSchema } }, (request) => basket.removeItem(request as never));
  app.post('/api/login', { schema: { body: loginSchema } }, (request) => auth.login(request as never));
  app.post('/api/logout', (request) => auth.logout(request));
  app.get('/api/devices', (request) => devices.list(request));
  app.delete('/api/devices/:handle', { schema: { params: handleParamsSchema } }, (request) => devices.revoke(request as never));
  app.post('/api/devices/revoke-others', (request) => devices.revokeOthers(request));
}

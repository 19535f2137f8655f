/**
 * Starts the demo app on a real listening socket for a test, with its own key prefix.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { buildApp } from '../../app/build-app.js';
import { createKeepsake, parseConfigText, type KeepsakeConfig, type KeepsakeConfigInput, type SessionManager } from '../../src/index.js';
import { readFileSync } from 'node:fs';

export interface TestApp {
  readonly app: FastifyInstance;
  readonly config: KeepsakeConfig;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly prefix: string;
  close(): Promise<void>;
}

/** A unique key prefix, so tests never see each other's keys on the shared Redis. */
export function testPrefix(name = 'test'): string {
  return `test:${name}:${randomBytes(4).toString('hex')}:`;
}

/** config/app.ini with `overrides` (key_prefix defaults to a fresh test prefix). */
export function testConfig(overrides: KeepsakeConfigInput = {}, env: NodeJS.ProcessEnv = {}): KeepsakeConfig {
  const text = readFileSync(new URL('../../../config/app.ini', import.meta.url), 'utf8');
  const session = { key_prefix: testPrefix(), ...overrides.session };
  return parseConfigText(text, 'config/app.ini', { env, overrides: { ...overrides, session } });
}

/** Builds and starts the demo app on 127.0.0.1 with a free port. */
export async function startApp(overrides: KeepsakeConfigInput = {}, env: NodeJS.ProcessEnv = {}): Promise<TestApp> {
  const config = testConfig(overrides, env);
  return startAppWith(config);
}

export async function startAppWith(config: KeepsakeConfig): Promise<TestApp> {
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, config, url: `http://127.0.0.1:${port}`, prefix: config.session.key_prefix, close: () => app.close() };
}

/**
 * A bare fastify app with keepsake's plugin and the routes a test declares (`routes`), listening
 * on a free port; closed (app, then keepsake) after the test. `beforePlugin` adds hooks that must
 * run before keepsake's.
 */
export async function startKeepsakeApp(
  t: { after(fn: () => Promise<void>): void },
  config: KeepsakeConfig,
  routes: (app: FastifyInstance, sessions: SessionManager) => void,
  beforePlugin: (app: FastifyInstance) => void = () => undefined,
): Promise<{ url: string; prefix: string }> {
  const keepsake = await createKeepsake(config);
  const app = Fastify();
  beforePlugin(app);
  await app.register(keepsake.plugin);
  routes(app, keepsake.sessionManager);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await app.close();
    await keepsake.close();
  });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, prefix: config.session.key_prefix };
}

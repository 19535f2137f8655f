/**
 * Starts the demo app on a real listening socket for a test, with its own key prefix.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../app/build-app.js';
import { parseConfigText, type KeepsakeConfig, type KeepsakeConfigInput } from '../../src/index.js';
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

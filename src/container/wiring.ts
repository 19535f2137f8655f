/**
 * @module The composition root: every singleton keepsake builds, top to bottom, in one place.
 * Apps add their controllers to the same container (see app/wiring.ts).
 */
import { asClass, asValue, createContainer, InjectionMode, type AwilixContainer } from 'awilix';
import type { KeepsakeConfig } from '../config/schema.js';
import { RedisPools } from '../redis/redis-pools.js';
import { CookieCodec } from '../session/cookie-codec.js';
import { silentObserver, type SessionObserver } from '../session/session-observer.js';
import { SessionManager } from '../session/session-manager.js';
import { SessionStore } from '../session/session-store.js';
import { SessionUpdater } from '../session/session-updater.js';
import { ValueCodec } from '../session/value-codec.js';

/** Everything the container can resolve; controllers list what they need from it. */
export interface KeepsakeCradle {
  config: KeepsakeConfig;
  redisPools: RedisPools;
  valueCodec: ValueCodec;
  cookieCodec: CookieCodec;
  sessionStore: SessionStore;
  sessionUpdater: SessionUpdater;
  sessionObserver: SessionObserver;
  sessionManager: SessionManager;
}

export type KeepsakeContainer = AwilixContainer<KeepsakeCradle>;

/** Builds the container; nothing connects to Redis until a session is started. */
export function createKeepsakeContainer(config: KeepsakeConfig): KeepsakeContainer {
  // PROXY: each class receives the cradle and takes what it names, e.g. `{ config, redisPools }`.
  const container = createContainer<KeepsakeCradle>({ injectionMode: InjectionMode.PROXY, strict: true });
  container.register({
    config: asValue(config),
    redisPools: asClass(RedisPools).singleton().disposer((pools) => pools.close()),
    valueCodec: asClass(ValueCodec).singleton(),
    cookieCodec: asClass(CookieCodec).singleton(),
    sessionStore: asClass(SessionStore).singleton(),
    sessionUpdater: asClass(SessionUpdater).singleton(),
    sessionObserver: asValue(silentObserver),
    sessionManager: asClass(SessionManager).singleton(),
  });
  return container;
}

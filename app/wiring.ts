/**
 * @module The demo's controllers, registered in keepsake's container as singletons. Each gets
 * what it needs through its constructor.
 */
import { asFunction, type AwilixContainer } from 'awilix';
import type { KeepsakeCradle } from '../src/index.js';
import { AuthController } from './controllers/auth-controller.js';
import { BasketController } from './controllers/basket-controller.js';
import { DevicesController } from './controllers/devices-controller.js';
import { HealthController } from './controllers/health-controller.js';
import { ProfileController } from './controllers/profile-controller.js';
import { LiveSocket } from './websocket/live-socket.js';

export interface DemoCradle extends KeepsakeCradle {
  healthController: HealthController;
  profileController: ProfileController;
  basketController: BasketController;
  authController: AuthController;
  devicesController: DevicesController;
  /** The WebSocket controller of `/ws`. */
  liveSocket: LiveSocket;
}

export function registerDemoControllers(container: AwilixContainer<KeepsakeCradle>): AwilixContainer<DemoCradle> {
  const demo = container as unknown as AwilixContainer<DemoCradle>;
  demo.register({
    healthController: asFunction(({ redisPools }: DemoCradle) => new HealthController(redisPools)).singleton(),
    profileController: asFunction(({ sessionManager }: DemoCradle) => new ProfileController(sessionManager)).singleton(),
    basketController: asFunction(({ sessionManager }: DemoCradle) => new BasketController(sessionManager)).singleton(),
    authController: asFunction(({ sessionManager }: DemoCradle) => new AuthController(sessionManager)).singleton(),
    devicesController: asFunction(({ sessionManager }: DemoCradle) => new DevicesController(sessionManager)).singleton(),
    liveSocket: asFunction(() => new LiveSocket()).singleton(),
  });
  return demo;
}

// src/wiring.ts: your controllers join keepsake's container, as singletons.
import { asFunction, type AwilixContainer } from 'awilix';
import type { KeepsakeContainer, KeepsakeCradle } from 'keepsake';
import { GreetingController } from './greeting-controller.js';

/** Everything the container resolves: keepsake's singletons and your controllers. */
export interface AppCradle extends KeepsakeCradle {
  greetingController: GreetingController;
}

export function registerControllers(container: KeepsakeContainer): AwilixContainer<AppCradle> {
  const app = container as unknown as AwilixContainer<AppCradle>;
  app.register({
    // PROXY injection: the factory receives the cradle and takes what it names.
    greetingController: asFunction(({ sessionManager }: AppCradle) => new GreetingController(sessionManager)).singleton(),
  });
  return app;
}

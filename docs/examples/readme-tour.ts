// The README's "five-minute tour", verbatim (test/unit/docs-examples.test.ts checks it), so the
// TypeScript there is type-checked against the packed package by test/e2e/package.test.ts.
import Fastify, { type FastifyRequest } from 'fastify';
import { asFunction } from 'awilix';
import { createKeepsake, type SessionManager } from 'keepsake';

declare module 'keepsake' {
  interface SessionValues { name: string; visits: number }   // get/put/update are type-checked
}

class GreetingController {
  constructor(private readonly sessions: SessionManager) {}

  async greet(request: FastifyRequest) {
    const session = await this.sessions.start(request);        // the cookie's session (one round trip), or a new one
    const visits = await session.data.update('visits', (n = 0) => n + 1);  // atomic, applied at once
    session.data.put('name', 'Ada');                           // persisted after the controller returns,
    return { hello: session.data.get('name'), visits };        // before the reply is sent
  }
}

const keepsake = await createKeepsake('config/app.ini');
keepsake.container.register({
  greetingController: asFunction(({ sessionManager }) => new GreetingController(sessionManager)).singleton(),
});
const app = Fastify();
app.addHook('onClose', () => keepsake.close());                 // added first, runs last: drains the Redis pools
await app.register(keepsake.plugin);                            // auto-persist after each controller
const greeting = keepsake.container.resolve('greetingController') as GreetingController;
app.get('/hello', (request) => greeting.greet(request));
await app.listen({ port: 3000 });

/**
 * `connect_timeout_ms` bounds one connection attempt: against an address that accepts TCP but
 * never answers (a hung Redis, a black-holed proxy), each attempt is abandoned after it, and the
 * request still answers 503 within acquire_timeout_ms.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { eventually } from '../support/session-helpers.js';

test('a server that never answers: each connect attempt is dropped after connect_timeout_ms; the request gets 503 in its bound', async (t) => {
  const lifetimes: number[] = [];
  const open = new Set<net.Socket>();
  let accepted = 0;
  const silent = net.createServer((socket) => {
    const acceptedAt = performance.now();
    accepted++;
    open.add(socket);
    socket.on('error', () => undefined);
    socket.resume(); // reads (and ignores) what the client sends, so its FIN is seen
    socket.on('close', () => {
      open.delete(socket);
      lifetimes.push(performance.now() - acceptedAt);
    });
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of open) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });
  const port = (silent.address() as net.AddressInfo).port;
  const app = await startApp({ redis_connection_pool: { default: { port: String(port), connect_timeout_ms: '300', acquire_timeout_ms: '2000' } } });
  t.after(() => app.close());

  const began = performance.now();
  const reply = await new Client(app.url).put('/api/name', { name: 'Alice' });
  const took = performance.now() - began;
  assert.equal(reply.status, 503);
  assert.equal(reply.body.error.code, 'ERR_SESSION_STORE_UNAVAILABLE');
  assert.ok(took < 2000 + 1000, `answered after ${Math.round(took)} ms (acquire_timeout_ms 2000)`);
  // Several attempts fit in the acquire wait, each one cut by the client after ~300 ms (not
  // left hanging until the acquire gave up).
  await eventually('every abandoned attempt closed', 2000, async () => open.size <= 1); // the pool may be trying once more
  assert.ok(accepted >= 3, `${accepted} connect attempts in 2 s (${lifetimes.map(Math.round).join(', ')} ms each)`);
  for (const lifetime of lifetimes) assert.ok(lifetime >= 250 && lifetime < 900, `an attempt lasted ${Math.round(lifetime)} ms; connect_timeout_ms is 300`);
});

/**
 * Same origin just works: `keepsake serve --port 8080` with an allow-list naming port 3000 still
 * serves its own page's live panel. A handshake whose Origin is the request's Host is allowed
 * whatever server.ws_allowed_origins says; the list governs other origins.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startApp, type TestApp } from '../support/app-server.js';
import { HandshakeRefused, WsClient } from '../support/ws-client.js';

let demo: TestApp;
let port: number;

before(async () => {
  demo = await startApp({ server: { ws_allowed_origins: 'http://127.0.0.1:3000, https://partner.example' } });
  port = Number(new URL(demo.url).port);
});
after(() => demo.close());

async function handshake(origin: string): Promise<number> {
  try {
    const socket = await WsClient.open(`${demo.url}/ws`, { origin });
    socket.socket.close();
    return 101;
  } catch (error) {
    if (error instanceof HandshakeRefused) return error.status;
    throw error;
  }
}

test("the page's own origin opens /ws although the allow-list names another port", async () => {
  assert.equal(await handshake(`http://127.0.0.1:${port}`), 101);
  assert.equal(await handshake(`HTTP://127.0.0.1:${port}/`), 101, 'compared as browsers send it');
});

test('other origins are still governed by the list: listed ones open, others get 403', async () => {
  assert.equal(await handshake('https://partner.example'), 101);
  assert.equal(await handshake('http://evil.example'), 403);
  assert.equal(await handshake(`http://127.0.0.1:${port + 1}`), 403, 'another port of the same host is another origin');
  assert.equal(await handshake(`http://localhost:${port}`), 403, 'another host name is another origin');
});

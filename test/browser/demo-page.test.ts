/**
 * Drives the demo page (app/public) in headless Chromium against the real app: HTTP actions,
 * the live WebSocket panel across tabs of one visitor, isolation from another visitor, login
 * (the socket follows the new id) and logout (sockets close with 4401).
 * Needs Redis at 127.0.0.1:6379 (config/app.ini) and /usr/bin/chromium.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { buildApp } from '../../app/build-app.js';
import { loadConfig } from '../../src/config/load-config.js';

/** The repository root: the nearest folder above this file (source or dist/) with a package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test file');
    dir = up;
  }
  return dir;
}

const ROOT = repoRoot();

/** Starts the real app on a free port; returns its base URL and how to stop it (and drop its keys). */
async function startApp(): Promise<{ baseUrl: string; close: () => Promise<void> }> {
  const keyPrefix = `test:browser:${randomBytes(6).toString('hex')}:`;
  const config = await loadConfig(join(ROOT, 'config/app.ini'), {
    overrides: {
      session: { key_prefix: keyPrefix },
      // The ini allows origins on port 3000 only; this app listens on a random port, and the
      // browser sends Origin http://127.0.0.1:<port> with the WebSocket handshake.
      server: { ws_allowed_origins: '*' },
    },
  });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error(`unexpected address ${String(address)}`);
  const close = async () => {
    await app.close();
    // Every key has a TTL anyway; don't leave a day's worth of test sessions behind.
    const pool = config.redis_connection_pool[config.session.redis_connection_pool]!;
    const redis = new Redis({ host: pool.host, port: pool.port, db: pool.db, lazyConnect: true });
    try {
      await redis.connect();
      const keys: string[] = [];
      for await (const batch of redis.scanStream({ match: `${keyPrefix}*`, count: 500 })) keys.push(...(batch as string[]));
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  };
  return { baseUrl: `http://127.0.0.1:${address.port}`, close };
}

const CHROMIUM = '/usr/bin/chromium';
/**
 * The README's screenshot is taken by this test: `KEEPSAKE_SCREENSHOT=docs npm test` refreshes
 * docs/demo-page.png; otherwise it goes to test-results/ (ignored), so a test run leaves the
 * working tree clean.
 */
const SCREENSHOT = join(ROOT, process.env.KEEPSAKE_SCREENSHOT === 'docs' ? 'docs' : 'test-results', 'demo-page.png');
const LIVE_TIMEOUT_MS = 5000;

let server: { baseUrl: string; close: () => Promise<void> } | undefined;
let browser: Browser | undefined;
/** Every console error and uncaught page error, on every page, tagged with the page's name. */
const problems: string[] = [];

before(async () => {
  server = await startApp();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  // Browser first: closing the app first would make open pages log failed reconnects.
  await browser?.close();
  await server?.close();
});

function newContext(): Promise<BrowserContext> {
  return browser!.newContext({ viewport: { width: 1100, height: 800 } });
}

async function openPage(context: BrowserContext, name: string): Promise<Page> {
  const page = await context.newPage();
  // Nothing is ignored: the page promises a clean console.
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`${name}: console error: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    problems.push(`${name}: request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`);
  });
  await page.goto(`${server!.baseUrl}/`);
  await waitText(page, '#live-status', 'connected');
  return page;
}

/** Polls an element's text until it equals (string) or matches (RegExp) the expectation. */
async function waitText(page: Page, selector: string, expected: string | RegExp, timeoutMs = LIVE_TIMEOUT_MS): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let actual: string | null = null;
  for (;;) {
    actual = ((await page.locator(selector).textContent()) ?? '').trim();
    if (typeof expected === 'string' ? actual === expected : expected.test(actual)) return actual;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${selector} should be ${String(expected)} within ${timeoutMs} ms, is ${JSON.stringify(actual)}`);
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? '').trim();
}

async function basketSkus(page: Page): Promise<string[]> {
  return page.locator('#basket-list li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-sku') ?? ''));
}

async function addItem(page: Page, sku: string, qty: number): Promise<void> {
  await page.bringToFront();
  await page.fill('#sku-input', sku);
  await page.fill('#qty-input', String(qty));
  await page.click('#add-item');
  await page.locator(`#basket-list li[data-sku="${sku}"]`).waitFor({ timeout: LIVE_TIMEOUT_MS });
}

/** Sub-tests run in order; after a failed one the later ones are skipped (they would only report its consequences). */
function steps(t: TestContext): (name: string, fn: () => Promise<void>) => Promise<void> {
  let broken = false;
  return (name, fn) =>
    t.test(name, { skip: broken ? 'an earlier step failed' : false }, async () => {
      try {
        await fn();
      } catch (error) {
        broken = true;
        throw error;
      }
    });
}

test('demo page: HTTP actions, live panel across tabs, isolation, login and logout', async (t) => {
  const contextA = await newContext();
  const contextB = await newContext();
  const step = steps(t);
  try {
    const tab1 = await openPage(contextA, 'A/tab1');
    let userA = '';

    await step('a new visitor gets an anonymous session, shown over HTTP and live', async () => {
      userA = await waitText(tab1, '#session-user', /^anon-.+/);
      await waitText(tab1, '#live-user', userA);
      assert.equal(await text(tab1, '#live-basket'), 'empty');
      assert.equal(await text(tab1, '#basket-list'), '');
    });

    await step('set a name and add two items', async () => {
      await tab1.fill('#name-input', 'Ada Lovelace');
      await tab1.click('#name-save');
      await waitText(tab1, '#session-name', 'Ada Lovelace');
      await addItem(tab1, 'apple', 2);
      await addItem(tab1, 'pear', 1);
      assert.deepEqual(await basketSkus(tab1), ['apple', 'pear']);
      await waitText(tab1, '#live-name', 'Ada Lovelace');
      await waitText(tab1, '#live-basket', 'apple × 2, pear × 1');
    });

    const tab2 = await openPage(contextA, 'A/tab2');

    await step('a second tab of the same visitor shows the same session', async () => {
      await waitText(tab2, '#session-user', userA);
      await waitText(tab2, '#session-name', 'Ada Lovelace');
      assert.deepEqual(await basketSkus(tab2), ['apple', 'pear']);
      await waitText(tab2, '#live-user', userA);
      await waitText(tab2, '#live-name', 'Ada Lovelace');
      await waitText(tab2, '#live-basket', 'apple × 2, pear × 1');
    });

    const visitorB = await openPage(contextB, 'B');
    let userB = '';

    await step('another visitor has their own empty anonymous session', async () => {
      userB = await waitText(visitorB, '#live-user', /^anon-.+/);
      assert.notEqual(userB, userA);
      assert.equal(await text(visitorB, '#session-user'), userB);
      assert.equal(await text(visitorB, '#live-name'), 'no name');
      assert.equal(await text(visitorB, '#live-basket'), 'empty');
      assert.deepEqual(await basketSkus(visitorB), []);
    });

    // Playwright acts on the front tab (a background tab's paused animation frames slow clicks
    // down); the other tabs stay in the background and must still get the pushes.
    await step('a change in tab 1 reaches tab 2 live, without a reload', async () => {
      await addItem(tab1, 'plum', 3);
      await waitText(tab2, '#live-basket', 'apple × 2, pear × 1, plum × 3');
      await tab1.bringToFront();
      await tab1.click('#basket-list li[data-sku="pear"] button.remove');
      await tab1.locator('#basket-list li[data-sku="pear"]').waitFor({ state: 'detached', timeout: LIVE_TIMEOUT_MS });
      await waitText(tab2, '#live-basket', 'apple × 2, plum × 3');
      assert.equal(await text(tab2, '#live-status'), 'connected');
    });

    await step("the other visitor does not see A's changes", async () => {
      assert.equal(await text(visitorB, '#live-user'), userB);
      assert.equal(await text(visitorB, '#live-name'), 'no name');
      assert.equal(await text(visitorB, '#live-basket'), 'empty');
      assert.equal(await text(visitorB, '#live-status'), 'connected');
      await visitorB.bringToFront();
      await visitorB.reload();
      await waitText(visitorB, '#live-status', 'connected');
      assert.equal(await text(visitorB, '#session-user'), userB);
      assert.equal(await text(visitorB, '#session-name'), 'no name yet');
      assert.deepEqual(await basketSkus(visitorB), []);
    });

    await step('login in tab 1: tab 2 follows the new session and stays connected', async () => {
      await tab1.bringToFront();
      await tab1.fill('#username-input', 'alice');
      await tab1.click('#login');
      await waitText(tab1, '#session-user', 'alice');
      assert.equal(await text(tab1, '#session-auth'), 'logged in');
      assert.equal(await text(tab1, '#session-name'), 'Ada Lovelace', 'name carries over');
      assert.deepEqual(await basketSkus(tab1), ['apple', 'plum'], 'basket carries over');
      await waitText(tab2, '#live-user', 'alice');
      await waitText(tab2, '#live-name', 'Ada Lovelace');
      await waitText(tab2, '#live-basket', 'apple × 2, plum × 3');
      assert.equal(await text(tab2, '#live-status'), 'connected');
      await waitText(tab1, '#live-user', 'alice');
      assert.equal(await text(tab1, '#live-status'), 'connected');
      assert.equal(await text(visitorB, '#live-user'), userB);

      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await tab2.bringToFront();
      await tab2.screenshot({ path: SCREENSHOT, fullPage: true });
    });

    await step('logout in tab 1 closes the live sockets of the session (4401)', async () => {
      await tab1.bringToFront();
      await tab1.click('#logout');
      await waitText(tab2, '#live-status', /logged out/);
      await waitText(tab1, '#live-status', /logged out/);
      assert.equal(await tab2.locator('#reconnect').isVisible(), true, 'tab 2 offers Reconnect');
      // Tab 1 shows the fresh anonymous session that follows the logout.
      const fresh = await waitText(tab1, '#session-user', /^anon-.+/);
      assert.notEqual(fresh, userA);
      // No automatic reconnect after 4401.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.match(await text(tab2, '#live-status'), /logged out/);
      assert.equal(await text(visitorB, '#live-status'), 'connected', 'the other visitor is untouched');
    });

    await step('reloading tab 2 shows an anonymous session with no name and an empty basket', async () => {
      await tab2.bringToFront();
      await tab2.reload();
      await waitText(tab2, '#live-status', 'connected');
      const user = await waitText(tab2, '#session-user', /^anon-.+/);
      assert.notEqual(user, userA);
      assert.equal(await text(tab2, '#session-auth'), 'anonymous');
      assert.equal(await text(tab2, '#session-name'), 'no name yet');
      assert.deepEqual(await basketSkus(tab2), []);
      await waitText(tab2, '#live-user', user);
      assert.equal(await text(tab2, '#live-name'), 'no name');
      assert.equal(await text(tab2, '#live-basket'), 'empty');
    });

    await step('Reconnect in tab 1 opens a socket on the current session', async () => {
      await tab1.bringToFront();
      await tab1.click('#reconnect');
      await waitText(tab1, '#live-status', 'connected');
      await waitText(tab1, '#live-user', await text(tab1, '#session-user'));
      assert.equal(await tab1.locator('#reconnect').isVisible(), false);
    });

    for (const [name, page] of [['A/tab1', tab1], ['A/tab2', tab2], ['B', visitorB]] as const) {
      assert.equal(await text(page, '#error'), '', `${name} shows no API error`);
    }
  } finally {
    // Close the pages before the app stops, so no reconnect attempt is logged.
    await contextA.close();
    await contextB.close();
  }
  assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');
});

test('devices panel: two browsers of one user list both devices online; revoking the other ends its session live', async (t) => {
  const contextA = await newContext();
  const contextB = await newContext();
  const user = `dev-${randomBytes(3).toString('hex')}`;
  const step = steps(t);
  const onlineCount = (page: Page) => page.locator('#devices-list li .device-state.on').count();
  try {
    const pageA = await openPage(contextA, 'devices/A');
    const pageB = await openPage(contextB, 'devices/B');

    await step('the panel is hidden while anonymous', async () => {
      assert.equal(await pageA.locator('#devices-card').isVisible(), false);
    });

    await step('both log in as one user: each page lists both devices, online', async () => {
      for (const page of [pageA, pageB]) {
        await page.bringToFront();
        await page.fill('#username-input', user);
        await page.click('#login');
        await waitText(page, '#session-user', user);
      }
      for (const page of [pageA, pageB]) {
        await page.locator('#devices-list li').nth(1).waitFor({ timeout: LIVE_TIMEOUT_MS });
        const deadline = Date.now() + LIVE_TIMEOUT_MS;
        while ((await onlineCount(page)) < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(await page.locator('#devices-list li').count(), 2);
        assert.equal(await onlineCount(page), 2, 'both devices online');
        assert.match(await text(page, '#devices-list'), /Chrome/);
        assert.match(await text(page, '#devices-list'), /Linux/);
        assert.equal(await page.locator('#devices-list li.current').count(), 1);
        assert.equal(await page.locator('#devices-list li.current button.revoke').count(), 0, 'no revoke button for this device');
      }
    });

    await step("revoking the other device from page A closes B's socket and B shows the anonymous state", async () => {
      await pageA.bringToFront();
      await pageA.click('#devices-list li:not(.current) button.revoke');
      await waitText(pageB, '#live-status', /logged out/);
      await waitText(pageB, '#session-user', /^anon-.+/);
      assert.equal(await text(pageB, '#session-auth'), 'anonymous');
      assert.equal(await pageB.locator('#devices-card').isVisible(), false);
      await pageA.locator('#devices-list li:not(.current)').waitFor({ state: 'detached', timeout: LIVE_TIMEOUT_MS });
      assert.equal(await pageA.locator('#devices-list li').count(), 1);
      assert.equal(await text(pageA, '#live-status'), 'connected');
      assert.equal(await text(pageA, '#session-user'), user);
    });

    for (const [name, page] of [['devices/A', pageA], ['devices/B', pageB]] as const) {
      assert.equal(await text(page, '#error'), '', `${name} shows no API error`);
    }
  } finally {
    await contextA.close();
    await contextB.close();
  }
  // This test's pages only: the first test reports its own.
  assert.deepEqual(problems.filter((problem) => problem.startsWith('devices/')), [], 'no console errors, page errors or failed requests');
});

/**
 * Several cookies with the session's name (a sibling subdomain's on the parent domain, a more
 * specific Path's): when they name different sessions, neither is used, so no sibling site can
 * pin a visitor to a session it chose. And the `__Host-` prefix, which no sibling can set.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startApp, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector, sessionCookie } from '../support/session-helpers.js';

const redis = inspector();
const apps: TestApp[] = [];

after(async () => {
  for (const app of apps) {
    await app.close();
    await dropPrefix(redis, app.prefix);
  }
  redis.disconnect();
});

test("a sibling's cookie beside the victim's: neither session is used, both are left as they were", async () => {
  const app = await startApp();
  apps.push(app);
  const attacker = new Client(app.url);
  await attacker.put('/api/name', { name: 'Mallory' });
  const victim = new Client(app.url);
  await victim.put('/api/name', { name: 'Alice' });
  const [attackerId, victimId] = [attacker.sessionId()!, victim.sessionId()!];

  for (const header of [
    `dmsession=${attacker.cookies.get('dmsession')}; dmsession=${victim.cookies.get('dmsession')}`,
    `dmsession=${victim.cookies.get('dmsession')}; theme=dark; dmsession=${attacker.cookies.get('dmsession')}`,
  ]) {
    const reply = await new Client(app.url).get('/api/session', { cookie: header });
    assert.equal(reply.status, 200);
    assert.equal(reply.body.name, null, 'a fresh anonymous session, not the attacker\'s (nor the victim\'s)');
    const fresh = sessionCookie(reply.setCookies);
    assert.ok(fresh !== undefined, 'the reply names the new session');
    assert.ok(fresh.id !== attackerId && fresh.id !== victimId);
  }
  // Neither session was touched through the ambiguous requests.
  assert.equal((await victim.get('/api/session')).body.name, 'Alice');
  assert.equal((await attacker.get('/api/session')).body.name, 'Mallory');
  // Garbage under the name beside the victim's cookie names nothing: the victim's session stands.
  const withJunk = await new Client(app.url).get('/api/session', { cookie: `dmsession=forged.value; dmsession=${victim.cookies.get('dmsession')}` });
  assert.equal(withJunk.body.name, 'Alice');
});

test('a __Host- cookie: set with Secure, Path=/ and no Domain, and read back', async () => {
  const app = await startApp({ session: { cookie_name: '__Host-ks', cookie_secure: 'true' } });
  apps.push(app);
  const client = new Client(app.url);
  const reply = await client.put('/api/name', { name: 'Hosted' });
  assert.equal(reply.status, 200);
  const cookie = sessionCookie(reply.setCookies, '__Host-ks');
  assert.ok(cookie !== undefined, `Set-Cookie ${reply.setCookies.join(' | ')}`);
  assert.ok(cookie.attributes.has('secure'));
  assert.equal(cookie.attributes.get('path'), '/');
  assert.equal(cookie.attributes.has('domain'), false);
  assert.equal((await client.get('/api/session')).body.name, 'Hosted');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sign } from 'cookie-signature';
import { ConfigError, describeConfig, validateConfig } from '../../src/index.js';
import { LegacyCookie } from '../../src/legacy/legacy-cookie.js';
import { parseLegacySession } from '../../src/legacy/legacy-values.js';

const OLD = 'short-old-secret';
const NEW = 'the-newer-secret-of-the-old-app';
const ID = 'LQ4TJjJst1TfKCUYX1PJtySkzMdUblq3';

function legacyCookie(legacy: Record<string, unknown> = {}) {
  const config = validateConfig({ legacy_sessions: { cookie_name: 'connect.sid', secrets: `${NEW},${OLD}`, ...legacy } });
  return new LegacyCookie(config.legacy_sessions!, false);
}

test("express-session's cookie (s:<id>.<sig>, URL-encoded) verifies with any legacy secret", () => {
  const cookies = legacyCookie();
  for (const secret of [NEW, OLD]) {
    const value = encodeURIComponent(`s:${sign(ID, secret)}`);
    assert.equal(cookies.read(`other=1; connect.sid=${value}; x=y`), ID);
  }
});

test("@fastify/session's cookie (<id>.<sig>, not URL-encoded) verifies too", () => {
  const cookies = legacyCookie({ cookie_name: 'sessionId' });
  assert.equal(cookies.read(`sessionId=${sign(ID, OLD)}`), ID);
  assert.equal(cookies.read(`sessionId=${encodeURIComponent(sign(ID, NEW))}`), ID);
});

test('a tampered, unsigned, foreign-secret or malformed legacy cookie is no legacy session', () => {
  const cookies = legacyCookie();
  const good = `s:${sign(ID, NEW)}`;
  assert.equal(cookies.read(`connect.sid=${good.slice(0, -2)}xx`), null);
  assert.equal(cookies.read(`connect.sid=s:${ID}`), null);
  assert.equal(cookies.read(`connect.sid=${ID}`), null);
  assert.equal(cookies.read(`connect.sid=s:${sign(ID, 'another-app-secret')}`), null);
  assert.equal(cookies.read(`connect.sid=%E0%A4%A`), null);
  assert.equal(cookies.read(`connect.sid=${'a'.repeat(600)}`), null);
  assert.equal(cookies.read(undefined), null);
  assert.equal(cookies.read(`dmsession=${good}`), null, 'another cookie name');
  // An id that would be a glob pattern or hold spaces is refused even when signed.
  assert.equal(cookies.read(`connect.sid=${encodeURIComponent(`s:${sign('a*', NEW)}`)}`), null);
});

test('the legacy cookie is cleared with Max-Age=0 on its own name, path and domain', () => {
  const header = legacyCookie({ cookie_path: '/shop', cookie_domain: 'example.test' }).clear();
  assert.match(header, /^connect\.sid=;/);
  assert.match(header, /Max-Age=0/);
  assert.match(header, /Path=\/shop/);
  assert.match(header, /Domain=example\.test/);
});

test("connect-redis's JSON: every top-level field but cookie is a value; user_field names the user", () => {
  const json = JSON.stringify({ cookie: { originalMaxAge: 1000, path: '/' }, user: 'alice', name: 'Ada', basket: [{ sku: 'tea', qty: 2 }] });
  assert.deepEqual(parseLegacySession(json, 'user'), {
    values: [['user', 'alice'], ['name', 'Ada'], ['basket', [{ sku: 'tea', qty: 2 }]]],
    userId: 'alice',
  });
  assert.equal(parseLegacySession(json, undefined)?.userId, null);
  assert.equal(parseLegacySession(JSON.stringify({ userId: 42 }), 'userId')?.userId, '42');
  assert.equal(parseLegacySession(JSON.stringify({ user: { id: 1 } }), 'user')?.userId, null);
  assert.equal(parseLegacySession('not json', 'user'), null);
  assert.equal(parseLegacySession('[1,2]', 'user'), null);
});

test('[legacy_sessions]: defaults, secrets masked, secrets required, prefixes that cannot meet', () => {
  const config = validateConfig({ legacy_sessions: { secrets: 'x' } });
  assert.deepEqual({ ...config.legacy_sessions }, { cookie_name: 'sessionId', cookie_path: '/', secrets: ['x'], key_prefix: 'sess:', redis_connection_pool: 'default' });
  assert.ok(!describeConfig(validateConfig({ legacy_sessions: { secrets: 'visible-secret' } })).includes('visible-secret'));
  assert.equal(validateConfig({}).legacy_sessions, undefined, 'the section is optional');
  const refused = (legacy: Record<string, unknown>, session: Record<string, unknown> = {}) =>
    assert.throws(() => validateConfig({ session, legacy_sessions: legacy }), (error: unknown) => error instanceof ConfigError && /legacy_sessions\./.test(error.message));
  refused({});
  refused({ secrets: 'a,,b' });
  refused({ secrets: 'x', key_prefix: 'keepsake:old:' });
  refused({ secrets: 'x', key_prefix: 'app:' }, { key_prefix: 'app:keepsake:' });
  refused({ secrets: 'x', redis_connection_pool: 'nope' });
  refused({ secrets: 'x', cookie_name: 'dmsession' });
});

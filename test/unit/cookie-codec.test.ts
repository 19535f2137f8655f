import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sign } from 'cookie-signature';
import { validateConfig } from '../../src/index.js';
import { CookieCodec } from '../../src/session/cookie-codec.js';
import { isSessionId, newSessionId } from '../../src/session/session-id.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

function codec(session: Record<string, unknown> = {}) {
  return new CookieCodec({ config: validateConfig({ session: { secrets: A, ...session } }) });
}

function cookieValue(setCookie: string): string {
  return setCookie.split(';')[0]!.split('=').slice(1).join('=');
}

test('ids are 256 random bits in base64url', () => {
  const ids = new Set(Array.from({ length: 1000 }, newSessionId));
  assert.equal(ids.size, 1000);
  for (const id of ids) {
    assert.ok(isSessionId(id));
    assert.equal(Buffer.from(id, 'base64url').length, 32);
  }
});

test('the cookie is <id>.<signature> as cookie-signature signs it, URL-encoded, with the configured attributes', () => {
  const id = newSessionId();
  const header = codec({ cookie_domain: 'example.test', cookie_same_site: 'strict', cookie_lifespan: 600 }).serialize(id);
  assert.equal(decodeURIComponent(cookieValue(header)), sign(id, A));
  assert.match(header, /^dmsession=/);
  assert.match(header, /; Max-Age=600/);
  assert.match(header, /; Path=\//);
  assert.match(header, /; Domain=example\.test/);
  assert.match(header, /; HttpOnly/);
  assert.match(header, /; SameSite=Strict/);
  assert.doesNotMatch(header, /Secure/);
  assert.match(codec({ cookie_secure: true }).serialize(id), /; Secure/);
});

test('a valid cookie is read back; tampered, foreign and malformed ones are no session', () => {
  const id = newSessionId();
  const c = codec();
  const value = cookieValue(c.serialize(id));
  assert.deepEqual(c.read(`dmsession=${value}`), { id, signedWithCurrentSecret: true });
  assert.deepEqual(c.read(`other=1; dmsession=${value}; x=2`), { id, signedWithCurrentSecret: true });
  const signed = sign(id, A);
  const flipped = signed.slice(0, -1) + (signed.endsWith('A') ? 'B' : 'A');
  for (const header of [
    undefined,
    '',
    'dmsession=',
    `dmsession=${encodeURIComponent(flipped)}`,
    `dmsession=${encodeURIComponent(sign(id, B))}`,
    `dmsession=${encodeURIComponent(sign('not-an-id', A))}`,
    `dmsession=${id}`,
    `dmsession=%E0%A4%A`,
    `dmsession=${'x'.repeat(10_000)}`,
    `xdmsession=${value}`,
  ]) {
    assert.equal(c.read(header), null, `header ${String(header).slice(0, 60)} must be no session`);
  }
});

test('several cookies of the name: the valid ones must agree on one id, or there is no session', () => {
  const id = newSessionId();
  const other = newSessionId();
  const c = codec({ secrets: `${A},${B}` });
  const mine = encodeURIComponent(sign(id, A));
  // Garbage beside a valid cookie cannot name a session: the valid one stands, wherever it is.
  assert.deepEqual(c.read(`dmsession=garbage; dmsession=${mine}`), { id, signedWithCurrentSecret: true });
  assert.deepEqual(c.read(`dmsession=${mine}; dmsession=garbage`), { id, signedWithCurrentSecret: true });
  // The same id signed by the old and the new secret (rotation): one session, the current signature.
  assert.deepEqual(c.read(`dmsession=${encodeURIComponent(sign(id, B))}; dmsession=${mine}`), { id, signedWithCurrentSecret: true });
  // A sibling subdomain's (or a more specific path's) valid cookie for another session, in either
  // order: the server cannot tell which is the visitor's, so neither is used.
  const theirs = encodeURIComponent(sign(other, A));
  assert.equal(c.read(`dmsession=${theirs}; dmsession=${mine}`), null);
  assert.equal(c.read(`dmsession=${mine}; other=1; dmsession=${theirs}`), null);
});

test('a __Host- cookie name is sent with Secure, Path=/ and no Domain', () => {
  const header = codec({ cookie_name: '__Host-ks', cookie_secure: true }).serialize(newSessionId());
  assert.match(header, /^__Host-ks=/);
  assert.match(header, /; Secure/);
  assert.match(header, /; Path=\/(;|$)/);
  assert.doesNotMatch(header, /Domain=/i);
});

test('rotation: the first secret signs, every secret verifies, and an old signature is flagged', () => {
  const id = newSessionId();
  const rotated = codec({ secrets: `${B},${A}` });
  assert.deepEqual(rotated.read(`dmsession=${encodeURIComponent(sign(id, A))}`), { id, signedWithCurrentSecret: false });
  assert.equal(decodeURIComponent(cookieValue(rotated.serialize(id))), sign(id, B));
});

test('clearing the cookie sends an empty value with Max-Age=0', () => {
  const header = codec().clear();
  assert.match(header, /^dmsession=;/);
  assert.match(header, /Max-Age=0/);
});

test('verified values are remembered without cross-talk: each reads back its own id, a tampered twin never verifies, eviction re-verifies', () => {
  const c = codec();
  const ids = Array.from({ length: 10_050 }, newSessionId);
  const values = ids.map((id) => encodeURIComponent(sign(id, A)));
  for (let round = 0; round < 2; round++) {
    values.forEach((value, i) => assert.equal(c.read(`dmsession=${value}`)?.id, ids[i]));
  }
  const twin = values[0]!.slice(0, -1) + (values[0]!.endsWith('A') ? 'B' : 'A');
  assert.equal(c.read(`dmsession=${twin}`), null);
  assert.equal(c.read(`dmsession=${values[0]}`)?.id, ids[0], 'still valid after its entry was evicted');
});

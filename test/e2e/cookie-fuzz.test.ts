/**
 * Property-based: whatever Cookie header a client sends (tampered signatures, wrong lengths,
 * unicode, repeated cookie names, 10 KB values, well-formed ids signed with the right secret that
 * the store does not know), a real listening app answers 2xx with a fresh session: a new id in
 * Set-Cookie that the store knows, never a 500, never an adopted id. Requests go out through
 * `http.request` with the header as raw bytes (fetch refuses many of them).
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sign } from 'cookie-signature';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { Client } from '../support/http-client.js';
import { dropPrefix, inspector, sessionCookie } from '../support/session-helpers.js';

const SECRET = 'dev-only-secret-change-me-0123456789abcdef'; // config/app.ini's default, as the app uses
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/**
 * Node refuses (431) requests whose headers exceed 16 KiB before any app code runs; for a request
 * with a body it measures non-ASCII header bytes twice over (each latin1 character as UTF-8).
 * Headers are kept under that measure: the 431 is a transport answer, not a session question.
 */
const MAX_HEADER_BYTES = 14 * 1024;
const headerCost = (header: string) => Buffer.byteLength(Buffer.from(header, 'utf8').toString('latin1'), 'utf8');

const redis = inspector();
const prefix = testPrefix('fuzz');
let server: TestApp;
let victim: { id: string; value: string; snapshot: Record<string, string> };
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

interface Reply {
  status: number;
  setCookies: string[];
  body: any;
}

/** One request with `cookie` sent as its UTF-8 bytes, exactly. */
function send(method: string, path: string, cookie: string, body?: unknown): Promise<Reply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: http.OutgoingHttpHeaders = { cookie: Buffer.from(cookie, 'utf8').toString('latin1') };
  if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // keep the text
        }
        resolve({ status: response.statusCode ?? 0, setCookies: response.headers['set-cookie'] ?? [], body: parsed });
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------
// Generators. Every pair knows whether its signature verifies: only then can it name a session.

type Kind = 'victim' | 'signed-unknown' | 'invalid';
interface Pair {
  text: string;
  kind: Kind;
}

const idChar = fc.constantFrom(...ID_CHARS);
const randomId = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString('base64url'));
/** Header-safe text: no control characters (HTTP refuses them before any app code runs). */
const headerText = (maxLength: number) => fc.string({ unit: 'binary', maxLength }).map((text) => text.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, ''));
const percentJunk = fc.string({ unit: fc.constantFrom('%', 'E', '0', 'A', 'z', 'ff', '%C3', '%28', '.', '"'), maxLength: 40 });
const huge = fc.tuple(fc.integer({ min: 4096, max: 10 * 1024 }), fc.constantFrom('a', '.', '%', 'é', '0')).map(([length, char]) => char.repeat(Math.floor(length / headerCost(char))));

/** The victim's cookie, changed so its signature can no longer verify. */
function tampered(): fc.Arbitrary<string> {
  const [id, signature] = decodeURIComponent(victim.value).split('.') as [string, string];
  const whole = `${id}.${signature}`;
  return fc.oneof(
    fc.tuple(fc.nat(whole.length - 1), idChar).map(([at, char]) => {
      const current = whole[at]!;
      const replacement = char === current || current === '.' ? (current === 'A' ? 'B' : 'A') : char;
      return current === '.' ? whole : whole.slice(0, at) + replacement + whole.slice(at + 1);
    }).filter((value) => value !== whole),
    fc.nat(whole.length - 1).map((length) => whole.slice(0, length)),
    fc.string({ unit: idChar, minLength: 1, maxLength: 20 }).map((extra) => whole + extra),
    fc.constant(sign(id, 'another-secret-0123456789abcdefghijklmnop')),
    randomId.map((other) => `${other}.${signature}`),
    fc.constant(id + signature),
    fc.constant(id),
  );
}

function pair(): fc.Arbitrary<Pair> {
  const invalid = (value: fc.Arbitrary<string>) => value.map((text): Pair => ({ text: `dmsession=${text}`, kind: 'invalid' }));
  return fc.oneof(
    invalid(headerText(80)),
    invalid(tampered()),
    invalid(tampered().map(encodeURIComponent)),
    invalid(percentJunk),
    invalid(huge),
    // Right secret, wrong id length: never looked up.
    invalid(fc.string({ unit: idChar, minLength: 1, maxLength: 60 }).filter((id) => id.length !== 43).map((id) => encodeURIComponent(sign(id, SECRET)))),
    // Right secret, well-formed id the store does not know: verified, then never adopted.
    randomId.map((id): Pair => ({ text: `dmsession=${encodeURIComponent(sign(id, SECRET))}`, kind: 'signed-unknown' })),
    randomId.map((id): Pair => ({ text: `dmsession="${sign(id, SECRET)}"`, kind: 'signed-unknown' })),
    headerText(60).map((text): Pair => ({ text: `other=${text}`, kind: 'invalid' })),
    headerText(30).map((text): Pair => ({ text: text.replace(/dmsession/g, ''), kind: 'invalid' })),
  );
}

const separator = fc.constantFrom('; ', ';', ' ; ', ';\t');

/** A whole Cookie header, and whether the victim's intact cookie decides it. */
function cookieHeader(withVictim: boolean): fc.Arbitrary<{ header: string; adopts: boolean }> {
  return fc.tuple(fc.array(pair(), { minLength: withVictim ? 0 : 1, maxLength: 5 }), fc.nat(5), separator).map(([pairs, at, sep]) => {
    const all = withVictim ? [...pairs.slice(0, at), { text: `dmsession=${victim.value}`, kind: 'victim' as const }, ...pairs.slice(at)] : pairs;
    // Oversized headers are a transport error (431), not a session question: drop the largest
    // junk pairs until the header fits. Whole pairs go, never a cut one: a cut tail could turn
    // a tampered cookie back into a valid one and the oracle below would be wrong.
    const kept = [...all];
    const join = () => kept.map((entry) => entry.text).join(sep);
    while (headerCost(join()) > MAX_HEADER_BYTES) {
      const largest = kept.reduce((max, entry, index) => (entry.kind !== 'victim' && entry.text.length > (kept[max]?.text.length ?? -1) ? index : max), -1);
      kept.splice(largest, 1);
    }
    // The pairs whose signature verifies name the session only if they all name the same one
    // (a signed-unknown id beside the victim's makes the header ambiguous: no session).
    const verified = kept.filter((entry) => entry.kind !== 'invalid');
    return { header: join(), adopts: verified.length > 0 && verified.every((entry) => entry.kind === 'victim') };
  });
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  server = await startApp({ session: { key_prefix: prefix } as never });
  const client = new Client(server.url);
  await client.put('/api/name', { name: 'victim' });
  const id = client.sessionId()!;
  victim = { id, value: client.cookies.get('dmsession')!, snapshot: await redis.hgetall(prefix + id) };
});

after(async () => {
  agent.destroy();
  await server?.close();
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

const ROUTES = [
  { method: 'GET', path: '/api/session', body: undefined },
  { method: 'PUT', path: '/api/name', body: { name: 'fuzz' } },
  { method: 'POST', path: '/api/login', body: { username: 'fuzzer' } },
] as const;

test('any Cookie header without a valid session cookie gets a fresh session: 2xx, a new stored id, never a 500, never an adopted id', async () => {
  await fc.assert(
    fc.asyncProperty(cookieHeader(false), fc.constantFrom(...ROUTES), async ({ header, adopts }, route) => {
      assert.equal(adopts, false);
      const reply = await send(route.method, route.path, header, route.body);
      assert.ok(reply.status >= 200 && reply.status < 300, `status ${reply.status}: ${JSON.stringify(reply.body)}`);
      const cookie = sessionCookie(reply.setCookies);
      assert.ok(cookie, 'a fresh session sets its cookie');
      assert.match(cookie.id, /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(cookie.id, victim.id);
      assert.ok(!header.includes(cookie.id), 'the new id is not one the client sent');
      assert.equal(await redis.exists(prefix + cookie.id), 1, 'the store knows the new id');
      if (route.path === '/api/session') {
        assert.match(reply.body.user, /^anon-/);
        assert.equal(reply.body.name, null);
      }
    }),
    { numRuns: 150 },
  );
  assert.deepEqual(await redis.hgetall(prefix + victim.id), victim.snapshot, "the victim's session is untouched");
});

test('with the intact cookie among junk and repeated names, the first cookie whose signature verifies decides', async () => {
  await fc.assert(
    fc.asyncProperty(cookieHeader(true), async ({ header, adopts }) => {
      const reply = await send('GET', '/api/session', header);
      assert.equal(reply.status, 200);
      const cookie = sessionCookie(reply.setCookies);
      if (adopts) {
        assert.equal(reply.body.name, 'victim');
        assert.ok(cookie === undefined || cookie.id === victim.id, 'the same session keeps its id');
      } else {
        assert.equal(reply.body.name, null);
        assert.ok(cookie !== undefined && cookie.id !== victim.id);
      }
    }),
    { numRuns: 60 },
  );
});

test('fixed worst cases: a 10 KB value, invalid percent-encoding, unicode, only separators', async () => {
  const cases = [
    `dmsession=${'x'.repeat(10 * 1024)}`,
    `dmsession=${victim.value}${'A'.repeat(10 * 1024)}`,
    'dmsession=%E0%A4%A',
    'dmsession=%',
    'dmsession=ünïcødé.😀',
    'dmsession=',
    'dmsession',
    ';;;;',
    '=',
    `dmsession=${encodeURIComponent(sign(randomBytes(32).toString('base64url'), SECRET))}; dmsession=${encodeURIComponent(sign(randomBytes(32).toString('base64url'), SECRET))}`,
  ];
  for (const header of cases) {
    const reply = await send('GET', '/api/session', header);
    assert.equal(reply.status, 200, header.slice(0, 40));
    assert.equal(reply.body.name, null);
    const cookie = sessionCookie(reply.setCookies);
    assert.ok(cookie && cookie.id !== victim.id && !header.includes(cookie.id));
  }
});

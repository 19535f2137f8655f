/**
 * What a review of the configuration found: SESSION_SECRETS ignored without a `secrets` key, a
 * value cut silently at an unquoted `#` or `;`, and no word at start about development settings.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import Fastify from 'fastify';
import { ConfigError, createKeepsake, parseConfigText, validateConfig } from '../../src/index.js';
import { DEV_SECRET } from '../../src/config/schema.js';

const secret = 'from-the-environment-0123456789abcdefghij';

test('with no secrets key, SESSION_SECRETS signs (ini file and options in code), as docs/config.md says', () => {
  const fromFile = parseConfigText('[session]\ncookie_name = shop\n', 'shop.ini', { env: { SESSION_SECRETS: `${secret}, ${secret}-old` } });
  assert.deepEqual(fromFile.session.secrets, [secret, `${secret}-old`]);
  const emptyKey = parseConfigText('[session]\nsecrets =\n', 'shop.ini', { env: { SESSION_SECRETS: secret } });
  assert.deepEqual(emptyKey.session.secrets, [secret]);
  assert.deepEqual(validateConfig({ session: { cookie_name: 'shop' } }, 'options', { SESSION_SECRETS: secret }).session.secrets, [secret]);
  assert.deepEqual(parseConfigText('[session]\n', 'shop.ini', { env: {} }).session.secrets, [DEV_SECRET], 'without either, the development secret');
  const own = `${secret}-own-key`;
  assert.deepEqual(parseConfigText(`[session]\nsecrets = ${own}\n`, 'shop.ini', { env: { SESSION_SECRETS: secret } }).session.secrets, [own], 'an explicit key wins');
});

test('an unquoted value holding # or ; is refused with the key, the line and the fix (quote it), never the secret', () => {
  const text = '[redis_connection_pool.default]\nhost = 127.0.0.1\npassword = ab#cd\n';
  assert.throws(() => parseConfigText(text, 'app.ini', { env: {} }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'ERR_CONFIG_INVALID');
    assert.match(error.message, /redis_connection_pool\.default\.password/);
    assert.match(error.message, /app\.ini line 3/);
    assert.match(error.message, /double quotes/);
    assert.ok(!error.message.includes('ab#') && !error.message.includes('cd'), error.message);
    return true;
  });
  assert.throws(() => parseConfigText('[session]\ncookie_path = /a;b\n', 'app.ini', { env: {} }), /session\.cookie_path: the value holds ';' \("\/a;b"\)/);
  assert.throws(() => parseConfigText('[redis_connection_pool.default]\npassword = "ab#cd" ; note\n', 'app.ini', { env: {} }), /password: a quoted value must end the line/);
  const quoted = parseConfigText('[redis_connection_pool.default]\npassword = "ab#cd"\nport = 6380 # a comment\n', 'app.ini', { env: {} });
  assert.equal(quoted.redis_connection_pool.default!.password, 'ab#cd');
  assert.equal(quoted.redis_connection_pool.default!.port, 6380);
});

test('outside production, an app with keepsake warns at start (listening) through the app logger about the development secret and a cookie without Secure', async () => {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const keepsake = await createKeepsake({ session: { secrets: DEV_SECRET } });
  const app = Fastify({ logger: { level: 'warn', stream } });
  await app.register(keepsake.plugin);
  await app.listen({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => setImmediate(resolve));
  await app.close();
  await keepsake.close();
  const warnings = lines.filter((line) => line.level === 40).map((line) => line.msg);
  assert.ok(warnings.some((msg) => /development secret/.test(msg)), JSON.stringify(warnings));
  assert.ok(warnings.some((msg) => /without Secure/.test(msg)), JSON.stringify(warnings));

  lines.length = 0;
  const own = await createKeepsake({ session: { secrets: secret, cookie_secure: true } });
  const quiet = Fastify({ logger: { level: 'warn', stream } });
  await quiet.register(own.plugin);
  await quiet.listen({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => setImmediate(resolve));
  await quiet.close();
  await own.close();
  assert.deepEqual(lines, [], 'own secrets and Secure cookies: nothing to say');
});

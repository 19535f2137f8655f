import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEV_SECRET as DEV_SECRET_FOR_TESTS } from '../../src/config/schema.js';
import { ConfigError, parseConfigText } from '../../src/index.js';

const VALID = `
[session]
secrets = ${'a'.repeat(32)}
[redis_connection_pool.default]
host = 127.0.0.1
`;

function fails(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfigText(text, 'bad.ini', { env });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_CONFIG_INVALID');
    return error;
  }
  assert.fail('expected the config to be refused');
}

test('every key of DEMO-APP.md has its default when absent', () => {
  const config = parseConfigText('', 'empty.ini', { env: {} });
  assert.deepEqual(config.server, {
    host: '127.0.0.1',
    port: 3000,
    ws_allowed_origins: ['http://127.0.0.1:3000', 'http://localhost:3000'],
    ws_max_message_bytes: 65536,
    ws_max_buffered_bytes: 1048576,
    ws_max_sockets_per_session: 32,
    shutdown_timeout_ms: 4000,
    trust_proxy: false,
  });
  assert.equal(config.session.cookie_name, 'dmsession');
  assert.equal(config.session.cookie_lifespan, 86400);
  assert.equal(config.session.absolute_lifespan, 604800);
  assert.equal(config.session.cookie_path, '/');
  assert.equal(config.session.cookie_domain, undefined);
  assert.equal(config.session.cookie_secure, 'auto');
  assert.equal(config.session.cookie_same_site, 'lax');
  assert.deepEqual(config.session.secrets, [DEV_SECRET_FOR_TESTS]);
  assert.equal(config.session.key_prefix, 'keepsake:');
  assert.equal(config.session.persist, 'before_response');
  assert.equal(config.session.max_session_bytes, 1048576);
  assert.equal(config.session.redis_connection_pool, 'default');
  const pool = config.redis_connection_pool.default!;
  assert.equal(pool.host, '127.0.0.1');
  assert.equal(pool.port, 6379);
  assert.equal(pool.db, 0);
  assert.equal(pool.tls, false);
  assert.equal(pool.min, 0);
  assert.equal(pool.max, 16);
  assert.equal(pool.acquire_timeout_ms, 500);
  assert.equal(pool.command_timeout_ms, 1000);
});

test('the config is frozen', () => {
  const config = parseConfigText(VALID, 'x.ini', { env: {} });
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.session) && Object.isFrozen(config.session.secrets));
  assert.throws(() => {
    (config.session as { cookie_name: string }).cookie_name = 'other';
  }, TypeError);
});

test('${VAR} and ${VAR:-default} read the environment; an unset ${VAR} names the key', () => {
  const text = '[session]\ncookie_name = ${NAME:-fallback}\nkey_prefix = ${PREFIX}\n';
  assert.equal(parseConfigText(text, 'x.ini', { env: { PREFIX: 'p:' } }).session.cookie_name, 'fallback');
  assert.equal(parseConfigText(text, 'x.ini', { env: { PREFIX: 'p:', NAME: 'sid' } }).session.cookie_name, 'sid');
  assert.equal(parseConfigText(text, 'x.ini', { env: { PREFIX: 'p:' } }).session.key_prefix, 'p:');
  const error = fails(text, {});
  assert.match(error.message, /session\.key_prefix/);
  assert.match(error.message, /PREFIX is not set/);
  assert.match(error.message, /bad\.ini/);
});

test('an empty value means unset', () => {
  const config = parseConfigText('[session]\ncookie_domain =\ncookie_lifespan =\n[redis_connection_pool.default]\npassword =\n', 'x.ini', { env: {} });
  assert.equal(config.session.cookie_domain, undefined);
  assert.equal(config.session.cookie_lifespan, 86400);
  assert.equal(config.redis_connection_pool.default!.password, undefined);
});

const BAD_CASES: Array<[string, string, RegExp]> = [
  ['cookie_same_site', '[session]\ncookie_same_site = loose\n', /session\.cookie_same_site: expected one of lax, strict, none \(got "loose"\) in bad\.ini/],
  ['cookie_lifespan not a number', '[session]\ncookie_lifespan = soon\n', /session\.cookie_lifespan: expected an integer from 1 to .* \(got "soon"\)/],
  ['cookie_lifespan zero', '[session]\ncookie_lifespan = 0\n', /session\.cookie_lifespan: expected an integer from 1/],
  ['persist', '[session]\npersist = sometimes\n', /session\.persist: expected before_response or after_response/],
  ['cookie_secure', '[session]\ncookie_secure = maybe\n', /session\.cookie_secure: expected auto, true or false/],
  ['same_site none without secure', '[session]\ncookie_same_site = none\n', /session\.cookie_same_site: none requires cookie_secure = true/],
  ['port out of range', '[server]\nport = 70000\n', /server\.port: expected an integer from 0 to 65535 \(got 70000\)/],
  ['unknown pool', '[session]\nredis_connection_pool = other\n', /session\.redis_connection_pool: .*'other' has none/],
  ['pool max', '[redis_connection_pool.default]\nmax = 0\n', /redis_connection_pool\.default\.max: expected an integer from 1/],
  ['pool min > max', '[redis_connection_pool.default]\nmin = 5\nmax = 2\n', /redis_connection_pool\.default\.min: expected min \(5\) <= max \(2\)/],
  ['pool tls', '[redis_connection_pool.default]\ntls = yes\n', /redis_connection_pool\.default\.tls: expected true or false/],
  ['cluster syntax', '[redis_connection_pool.default]\ncluster = nonsense\n', /redis_connection_pool\.default\.cluster.*expected host:port/],
  ['wait_replicas on a cluster', '[redis_connection_pool.default]\ncluster = 127.0.0.1:7000\nwait_replicas = 1\n', /redis_connection_pool\.default\.wait_replicas: expected 0 with cluster/],
  ['wait_timeout_ms not under command_timeout_ms', '[redis_connection_pool.default]\nwait_replicas = 1\nwait_timeout_ms = 1000\ncommand_timeout_ms = 1000\n', /redis_connection_pool\.default\.wait_timeout_ms: expected less than command_timeout_ms \(1000\)/],
  ['sentinels without name', '[redis_connection_pool.default]\nsentinels = 127.0.0.1:26379\n', /redis_connection_pool\.default\.sentinel_name: expected the master name/],
  ['unknown key', '[session]\ncookie_lifspan = 10\n', /\[session\]: unknown key\(s\) cookie_lifspan/],
  ['unknown section', '[sesion]\ncookie_name = x\n', /unknown section\(s\) \[sesion\] \(expected \[server\], \[session\] and \[redis_connection_pool\.NAME\] sections\) in bad\.ini/],
  ['key before any section', 'cookie_name = x\n[session]\n', /key\(s\) outside any section: cookie_name/],
  ['pool section without a name', '[redis_connection_pool]\nhost = 127.0.0.1\n', /^\[redis_connection_pool\]: key host outside a named pool: expected a \[redis_connection_pool\.NAME\] section/],
  ['placeholder without its }', '[session]\nkey_prefix = ${PREFIX\n', /session\.key_prefix: "\$\{" that is not a placeholder/],
  ['placeholder of no variable name', '[session]\nkey_prefix = ${1x}\n', /session\.key_prefix: "\$\{" that is not a placeholder/],
];

for (const [name, text, expected] of BAD_CASES) {
  test(`a wrong ini file is refused with the key named: ${name}`, () => {
    assert.match(fails(text).message, expected);
  });
}

test('a malformed placeholder in a secret is refused without echoing the secret', () => {
  const message = fails('[session]\nsecrets = ${HIDDEN-very-secret-value-0123456789abcdef\n').message;
  assert.match(message, /session\.secrets: "\$\{" that is not a placeholder/);
  assert.ok(!message.includes('very-secret'), message);
});

test('an empty entry in secrets is refused by its position, and the positions after it stay right', () => {
  const good = 'g'.repeat(40);
  const message = fails(`[session]\nsecrets = ${good}, , short-secret\n`).message;
  assert.match(message, /secrets\[1\] is empty \(a stray comma\?\)/);
  assert.match(message, /secrets\[2\] has 12 characters/);
  assert.ok(!message.includes(good) && !message.includes('short-secret'), message);
});

test('a short secret is refused by position and length, never echoed', () => {
  const secret = 'short-secret-value';
  const error = fails(`[session]\nsecrets = ${'b'.repeat(40)}, ${secret}\n`);
  assert.match(error.message, /session\.secrets: secrets\[1\] has 18 characters, at least 32 expected/);
  assert.ok(!error.message.includes(secret), 'the secret must not appear in the message');
});

test('the built-in dev secret is refused when NODE_ENV=production', () => {
  const previous = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    const error = fails('[session]\ncookie_secure = true\n');
    assert.match(error.message, /secrets\[0\] is the built-in development secret/);
    assert.ok(!error.message.includes(DEV_SECRET_FOR_TESTS));
  } finally {
    process.env.NODE_ENV = previous;
  }
});

test('several problems are reported together', () => {
  const error = fails('[session]\ncookie_same_site = loose\npersist = never\n');
  assert.match(error.message, /2 problems/);
  assert.match(error.message, /cookie_same_site/);
  assert.match(error.message, /persist/);
});

test('config/app.ini is valid and matches DEMO-APP.md', async () => {
  const { loadConfig } = await import('../../src/index.js');
  const config = await loadConfig(new URL('../../../config/app.ini', import.meta.url).pathname, { env: {} });
  assert.equal(config.server.port, 3000);
  assert.equal(config.session.cookie_name, 'dmsession');
  assert.equal(config.redis_connection_pool.default!.port, 6379);
});

test('a __Host- cookie name requires cookie_secure = true, cookie_path = / and no cookie_domain', () => {
  const base = `[session]\nsecrets = ${'a'.repeat(32)}\ncookie_name = __Host-ks\n`;
  const ok = parseConfigText(`${base}cookie_secure = true\n`, 'ok.ini', { env: {} });
  assert.equal(ok.session.cookie_name, '__Host-ks');
  const error = fails(`${base}cookie_secure = auto\ncookie_path = /shop\ncookie_domain = example.com\n`);
  assert.match(error.message, /session\.cookie_name/);
  assert.match(error.message, /__Host- prefix, which requires cookie_secure = true \(got auto\), cookie_path = \/ \(got '\/shop'\), no cookie_domain \(got 'example\.com'\)/);
  assert.match(error.message, /bad\.ini/);
  assert.match(fails(`[session]\nsecrets = ${'a'.repeat(32)}\ncookie_name = __Secure-ks\n`).message, /__Secure- prefix, which requires cookie_secure = true \(got auto\)/);
});

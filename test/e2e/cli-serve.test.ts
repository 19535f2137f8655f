/**
 * `keepsake serve` and `keepsake config check` as a user runs them: a real child process.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { testPrefix } from '../support/app-server.js';
import { Client } from '../support/http-client.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/keepsake.js');

function iniFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'keepsake-cli-')), 'app.ini');
  writeFileSync(file, text);
  return file;
}

function run(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SESSION_SECRETS: '' } });
}

test('config check prints the effective config with secrets masked and exits 0', () => {
  const secret = 's'.repeat(40);
  const file = iniFile(`[session]\nsecrets = ${secret}\n[redis_connection_pool.default]\npassword = hunter2-hunter2\n`);
  const result = run('config', 'check', '--config', file);
  assert.equal(result.status, 0, result.stderr);
  const printed = JSON.parse(result.stdout);
  assert.equal(printed.session.cookie_name, 'dmsession');
  assert.deepEqual(printed.session.secrets, ['*** (40 characters)']);
  assert.equal(printed.redis_connection_pool.default.password, '***');
  assert.ok(!result.stdout.includes(secret) && !result.stdout.includes('hunter2'));
});

test('config check of config/app.ini exits 0', () => {
  const result = run('config', 'check', '--config', 'config/app.ini');
  assert.equal(result.status, 0, result.stderr);
});

test('config check of a wrong file exits non-zero naming file, section, key and what was expected', () => {
  const file = iniFile('[session]\ncookie_same_site = loose\n');
  const result = run('config', 'check', '--config', file);
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /session\.cookie_same_site: expected one of lax, strict, none \(got "loose"\)/);
  assert.ok(result.stderr.includes(file));
  assert.equal(result.stdout, '');
});

test('serve refuses to start on the same errors', () => {
  const result = run('serve', '--config', iniFile('[redis_connection_pool.default]\nport = many\n'));
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /redis_connection_pool\.default\.port: expected an integer/);
});

test('serve listens, logs its URL, serves sessions and exits 0 on SIGTERM', async (t) => {
  const prefix = testPrefix('cli');
  // The shared Redis keeps nothing of this test.
  t.after(async () => {
    const redis = new Redis({ host: '127.0.0.1', port: 6379 });
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  const file = iniFile(`[session]\nkey_prefix = ${prefix}\n[redis_connection_pool.default]\nport = 6379\n`);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL logged: ${stderr}`)), 10_000);
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      const match = /listening on (http:\/\/[^\s]+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  const client = new Client(url);
  assert.equal((await client.put('/api/name', { name: 'Ada' })).status, 200);
  assert.equal((await client.get('/api/session')).body.name, 'Ada');
  assert.deepEqual(stderr.split('\n').filter((line) => line.includes(url)), [`keepsake listening on ${url}`], 'one line names the URL');

  // A second server on the same port says why it cannot start, in one line.
  const busy = run('serve', '--config', file, '--port', new URL(url).port);
  assert.equal(busy.status, 1);
  assert.match(busy.stderr, /^keepsake: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  assert.doesNotMatch(busy.stderr, /\n\s+at /, 'no stack trace');

  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const began = Date.now();
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.ok(Date.now() - began < 5000, 'exits within 5 s');
});

test('a wrong command line exits 2 with the usage and what was wrong, no stack trace', () => {
  for (const [args, expected] of [
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['serve', '--port', 'abc'], /--port: expected an integer from 0 to 65535 \(got "abc"\)/],
    [['serve', '--port', '99999'], /--port: expected an integer from 0 to 65535 \(got "99999"\)/],
    [['serve', '--port'], /'--port <value>' argument missing/],
  ] as const) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, expected);
    assert.match(result.stderr, /usage:\n {2}keepsake serve --config FILE/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(result.stdout, '');
  }
});

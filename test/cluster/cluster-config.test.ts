// `keepsake config check` on Redis Cluster and Sentinel pools: valid files print the effective
// config, invalid ones exit non-zero naming the file, section, key and what was expected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../../src/index.js';

const CLI = fileURLToPath(new URL('../../../bin/keepsake.js', import.meta.url));
let dir: string;
// Each CLI run is a process start (seconds on a busy CI box): three files, started at once.
const CASES = {
  // Both pool kinds in one valid file: every [redis_connection_pool.NAME] is validated.
  valid: [
    '[redis_connection_pool.main]',
    'cluster = 10.0.0.1:7000, 10.0.0.2:7001,10.0.0.3:7002',
    'db = 0',
    'password = s3cret-cluster-pass',
    'max = 4',
    '[redis_connection_pool.replicated]',
    'sentinels = 10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379',
    'sentinel_name = mymaster',
    'sentinel_password = s3cret-sentinel-pass',
  ],
  nonsense: ['[redis_connection_pool.main]', 'cluster = nonsense'],
  problems: [
    '[redis_connection_pool.main]',
    'cluster = 127.0.0.1:7000,127.0.0.1:70000',
    '[redis_connection_pool.noname]',
    'sentinels = 127.0.0.1:26379',
    '[redis_connection_pool.both]',
    'cluster = 127.0.0.1:7000',
    'sentinels = 127.0.0.1:26379',
    'sentinel_name = mymaster',
    '[redis_connection_pool.db3]',
    'cluster = 127.0.0.1:7000',
    'db = 3',
  ],
};
const runs = new Map<keyof typeof CASES, Promise<Run>>();

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keepsake-cluster-config-'));
  for (const [name, lines] of Object.entries(CASES)) runs.set(name as keyof typeof CASES, check(name, lines));
});
after(async () => {
  await Promise.allSettled(runs.values());
  rmSync(dir, { recursive: true, force: true });
});

const run = (name: keyof typeof CASES) => runs.get(name)!;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  file: string;
}

function check(name: string, lines: string[]): Promise<Run> {
  const file = path.join(dir, `${name}.ini`);
  writeFileSync(file, ['[session]', 'key_prefix = ks:', 'redis_connection_pool = main', ...lines, ''].join('\n'));
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'config', 'check', '--config', file], { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr, file });
    });
  });
}

test('cluster and sentinel pools (db = 0 beside cluster) are valid: exit 0, effective config printed, passwords masked', async () => {
  const result = await run('valid');
  assert.equal(result.code, 0, result.stderr);
  const pools = JSON.parse(result.stdout).redis_connection_pool;
  assert.deepEqual(pools.main.cluster, [
    { host: '10.0.0.1', port: 7000 },
    { host: '10.0.0.2', port: 7001 },
    { host: '10.0.0.3', port: 7002 },
  ]);
  assert.equal(pools.main.db, 0);
  assert.equal(pools.main.max, 4);
  assert.equal(pools.main.password, '***');
  assert.equal(pools.replicated.sentinels.length, 3);
  assert.deepEqual(pools.replicated.sentinels[1], { host: '10.0.0.2', port: 26379 });
  assert.equal(pools.replicated.sentinel_name, 'mymaster');
  assert.equal(pools.replicated.sentinel_password, '***');
  assert.ok(!result.stdout.includes('s3cret'), 'no password in the output');
});

test('cluster = nonsense exits non-zero naming the file, redis_connection_pool.NAME.cluster and host:port', async () => {
  const result = await run('nonsense');
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /redis_connection_pool\.main\.cluster/);
  assert.match(result.stderr, /expected host:port/);
  assert.match(result.stderr, /nonsense/);
  assert.doesNotMatch(result.stderr, /problems/, 'one problem, reported once');
  assert.ok(result.stderr.includes(result.file), result.stderr);
  assert.equal(result.stdout, '');
});

test('a bad port, sentinels without sentinel_name, cluster with sentinels, db 3 on a cluster: each named', async () => {
  const result = await run('problems');
  assert.notEqual(result.code, 0);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /redis_connection_pool\.main\.cluster\S*: expected host:port with a port from 1 to 65535/);
  assert.match(result.stderr, /redis_connection_pool\.noname\.sentinel_name: expected the master name/);
  assert.match(result.stderr, /redis_connection_pool\.both\.sentinels: expected either cluster or sentinels/);
  assert.match(result.stderr, /redis_connection_pool\.db3\.db: expected 0/);
});

test('the ini examples of docs/deployment.md are valid configs', () => {
  const page = readFileSync(fileURLToPath(new URL('../../../docs/deployment.md', import.meta.url)), 'utf8');
  const blocks = [...page.matchAll(/^```ini\n([\s\S]*?)^```$/gm)].map((match) => match[1]!);
  assert.equal(blocks.length, 2, 'a Sentinel and a Cluster example');
  const env = { REDIS_PASSWORD: 'redis-pass', SENTINEL_PASSWORD: 'sentinel-pass' };
  const [sentinel, cluster] = blocks.map((block, index) => parseConfigText(block, `docs/deployment.md ini block ${index + 1}`, { env }).redis_connection_pool.default!);
  assert.equal(sentinel!.sentinels!.length, 3);
  assert.equal(sentinel!.sentinel_name, 'mymaster');
  assert.equal(cluster!.cluster!.length, 3);
  assert.equal(cluster!.password, 'redis-pass');
});

/**
 * The package as npm ships it, in the app a fastify team already has: `npm pack`, then `npm
 * install` of the tarball into a fresh project that registers @fastify/websocket and its own pino
 * logger itself. keepsake is configured from an object; one route uses `request.startSession()`,
 * another `fastify.sessionManager`. The project type-checks under `tsc --strict` with skipLibCheck
 * off, serves, and keepsake's lines (Redis unreachable, then back) are in the app's log stream and
 * nothing is on the console. The docs' examples are type-checked against the packed types too.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { testPrefix } from '../support/app-server.js';
import { RedisServer } from '../support/redis-server.js';
import { dropPrefix, eventually, inspector } from '../support/session-helpers.js';
import { WsClient } from '../support/ws-client.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

interface Manifest {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  exports: Record<string, unknown>;
  engines: { node: string };
}

let tmp: string;
let project: string;
let installed: string;
let packedFiles: string[];
let manifest: Manifest;
let redis: Redis;
let typeCheck: Promise<Run>;
const prefix = testPrefix('package');
const secret = 'package-test-secret-0123456789abcdefghij';

/** The version this repo has installed, so `npm install --prefer-offline` finds it in the cache. */
async function installedVersion(name: string): Promise<string> {
  return (JSON.parse(await readFile(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'keepsake-package-'));
  redis = inspector();
  // --ignore-scripts: `prepare` (= the tsc build) has just run as the first step of `npm test`, so
  // dist/ is current; running it again would rewrite dist/ under the test files running beside this one.
  const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], repo);
  assert.equal(packed.code, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  packedFiles = info!.files.map((file) => file.path);

  // A fresh fastify project, as a team has it before adding keepsake: its own fastify, websocket
  // plugin, pino and TypeScript types. keepsake comes from the tarball; npm resolves its
  // dependencies and peers as for any user (from the cache this repo's `npm ci` filled, or the registry).
  project = join(tmp, 'fresh-app');
  installed = join(project, 'node_modules', 'keepsake');
  await mkdir(project, { recursive: true });
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const own = await Promise.all(['fastify', '@fastify/websocket', 'pino', '@types/node', '@types/ws'].map(async (name) => `${name}@${await installedVersion(name)}`));
  const install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(tmp, info!.filename), ...own], project, {}, 240_000);
  assert.equal(install.code, 0, `npm install failed:\n${install.stdout}${install.stderr}`);
  manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as Manifest;
  // tsc takes most of this file's time: it starts now and runs while the tests before its own do.
  typeCheck = typeCheckProject();
  typeCheck.catch(() => undefined); // awaited, and reported, by its test
});

after(async () => {
  await dropPrefix(redis, prefix).catch(() => undefined);
  redis.disconnect();
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
});

test('the tarball holds the library, its types, the operators CLI, docs and LICENSE; no demo app, tests or source maps', () => {
  for (const path of ['package.json', 'README.md', 'LICENSE', 'dist/src/index.js', 'dist/src/index.d.ts', 'bin/keepsake.js', 'dist/bin/cli.js', 'config/app.ini', 'docs/config.md', 'docs/errors.md', 'docs/fastify.md']) {
    assert.ok(packedFiles.includes(path), `${path} is not in the package`);
  }
  for (const path of packedFiles) {
    assert.ok(!/^(dist\/)?(test|bench|app)\//.test(path), `${path} should not be shipped`);
    assert.ok(!path.endsWith('.map'), `${path}: no source maps without the sources`);
    assert.ok(!/^dist\/.*\.ts$/.test(path) || path.endsWith('.d.ts'));
  }
  assert.equal(manifest.scripts.prepare, 'npm run build', 'a git install or a publish builds dist/ through prepare');
  assert.deepEqual(Object.keys(manifest.exports).sort(), ['.', './package.json']);
});

test('fastify and awilix are peers, @fastify/websocket an optional peer; dependencies hold only what keepsake runs', () => {
  assert.ok('fastify' in manifest.peerDependencies && 'awilix' in manifest.peerDependencies);
  assert.equal(manifest.peerDependenciesMeta['@fastify/websocket']?.optional, true);
  for (const name of ['fastify', 'awilix', '@fastify/websocket', '@fastify/static', '@types/ws', 'ws']) {
    assert.ok(!(name in manifest.dependencies), `${name} should not be a runtime dependency`);
  }
  for (const name of Object.keys(manifest.dependencies)) assert.ok(!name.startsWith('@types/'), `${name} is type-only`);
  assert.match(manifest.engines.node, /20\.17/);
});

test('published types hide internal methods and import only declared, typed packages (no ioredis, no ws)', async () => {
  const declarations = await listFiles(join(installed, 'dist'), '.d.ts');
  const reachable = new Set<string>();
  for (const file of declarations) {
    const text = await readFile(file, 'utf8');
    for (const internal of ['bindUser(', 'markStored(', 'changeId(', 'dedicatedClient(']) {
      assert.ok(!text.includes(internal), `${relative(installed, file)} declares ${internal}`);
    }
    for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*'([^'.][^']*)'/g)) {
      if (!specifier!.startsWith('node:')) reachable.add(specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!);
    }
  }
  const index = await readFile(join(installed, 'dist', 'src', 'index.d.ts'), 'utf8');
  assert.match(index, /session-decorators/, 'the request/instance decorators are part of the public types');
  for (const name of reachable) {
    assert.ok(name in manifest.dependencies || name in manifest.peerDependencies, `a declaration imports '${name}', which is neither a dependency nor a peer`);
  }
});

test('the fresh project type-checks under tsc --strict with skipLibCheck off: its app and the docs examples', async () => {
  const tsc = await typeCheck;
  assert.equal(tsc.code, 0, `tsc failed:\n${tsc.stdout}${tsc.stderr}`);
});

test("the fresh app serves: startSession() and fastify.sessionManager, its own @fastify/websocket, and keepsake's lines in the app's pino log, none on the console", async (t) => {
  const compiled = await typeCheck;
  assert.equal(compiled.code, 0, 'the app compiles');
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const logFile = join(project, 'app.log');
  const child = spawn(process.execPath, [join(project, 'out', 'app.js')], {
    cwd: project,
    env: { ...process.env, NODE_DEBUG: '', LOG_FILE: logFile, REDIS_PORT: String(server.port), PREFIX: prefix, SESSION_SECRETS: secret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let console = '';
  child.stdout!.on('data', (chunk: Buffer) => (console += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (console += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => stop(child, exited));
  const log = async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number; msg: string; reqId?: string });
  };

  let url = '';
  await eventually('the app listens', 20_000, async () => {
    const line = (await log()).find((entry) => entry.msg.startsWith('Server listening at http://127.0.0.1:'));
    url = line?.msg.slice('Server listening at '.length) ?? '';
    return url !== '';
  });
  const first = await fetch(`${url}/visit`);
  assert.deepEqual([first.status, await first.json()], [200, { visits: 1 }]);
  const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
  const second = await fetch(`${url}/visit`, { headers: { cookie } });
  assert.deepEqual(await second.json(), { visits: 2 });
  const read = await fetch(`${url}/visits`, { headers: { cookie } });
  assert.deepEqual(await read.json(), { visits: 2, same: true }, 'fastify.sessionManager reads what request.startSession() stored');
  const socket = await WsClient.open(`${url}/ws`, { cookie });
  assert.deepEqual(await socket.next(), { visits: 2 }, "keepsake's WebSocket route on the app's own @fastify/websocket");
  socket.socket.close();
  const tampered = await fetch(`${url}/visit`, { headers: { cookie: `${cookie}x` } });
  assert.equal(tampered.status, 200);

  await server.kill();
  const down = await fetch(`${url}/visit`, { headers: { cookie } });
  assert.equal(down.status, 503);
  // The app keeps fastify's own error handler: its default body carries the error's code.
  assert.equal(((await down.json()) as { code: string }).code, 'ERR_SESSION_STORE_UNAVAILABLE');
  await eventually('the app log says Redis is lost', 5000, async () => (await log()).some((entry) => /^Redis connection lost/.test(entry.msg)));

  await server.restart();
  await eventually('requests succeed again', 10_000, async () => (await fetch(`${url}/visit`, { headers: { cookie } })).status === 200);
  await eventually('the app log says Redis is back', 5000, async () => (await log()).some((entry) => /^Redis connection back/.test(entry.msg)));

  const entries = await log();
  const lost = entries.find((entry) => /^Redis connection lost/.test(entry.msg))!;
  assert.equal(lost.level, 50, 'lost: error level');
  assert.equal(entries.find((entry) => /^Redis connection back/.test(entry.msg))!.level, 30, 'back: info level');
  const rejected = entries.find((entry) => /session cookie rejected/.test(entry.msg));
  assert.ok(rejected !== undefined && rejected.level === 20, 'a rejected cookie: debug');
  assert.ok(rejected.reqId !== undefined, "logged through the request's child logger");
  assert.ok(entries.some((entry) => /session persist failed/.test(entry.msg) || /Redis connection lost/.test(entry.msg)));
  assert.ok(entries.some((entry) => entry.level === 40 && /without Secure/.test(entry.msg)), 'the development warning (cookie_secure = auto, not production)');

  await stop(child, exited);
  assert.equal(console, '', 'nothing on the console');
});

test('npx keepsake config check runs from the fresh project; serve says the demo app lives in the repository', async () => {
  const ini = (sameSite: string) => `[session]\ncookie_name = shop\nsecrets = \${SHOP_SECRETS}\ncookie_same_site = ${sameSite}\n\n[redis_connection_pool.default]\nhost = 127.0.0.1\n`;
  await writeFile(join(project, 'shop.ini'), ini('strict'));
  await writeFile(join(project, 'bad.ini'), ini('loose'));
  const npx = (...args: string[]) => run('npx', ['--no', 'keepsake', ...args], project, { SHOP_SECRETS: secret });
  const [valid, invalid, serve] = await Promise.all([npx('config', 'check', '--config', 'shop.ini'), npx('config', 'check', '--config', 'bad.ini'), npx('serve', '--config', 'shop.ini')]);

  assert.equal(valid.code, 0, valid.stderr);
  const shown = JSON.parse(valid.stdout) as { session: { cookie_name: string; cookie_same_site: string } };
  assert.deepEqual([shown.session.cookie_name, shown.session.cookie_same_site], ['shop', 'strict']);
  assert.ok(!valid.stdout.includes(secret) && !valid.stderr.includes(secret), 'the secret is never printed');
  assert.notEqual(invalid.code, 0);
  assert.match(invalid.stderr, /session\.cookie_same_site/);
  assert.match(invalid.stderr, /bad\.ini/);
  assert.equal(serve.code, 1);
  assert.match(serve.stderr, /demo application.*repository/);
});

test('the getting-started app runs as docs/getting-started.md says: visits counted, name kept, bad input a 400, SIGTERM exits 0', async () => {
  const compiled = await typeCheck; // tsc also emitted the examples' JavaScript into out/
  assert.equal(compiled.code, 0, 'the examples compile');
  const server = join(project, 'out', 'examples', 'getting-started', 'server.js');
  // The guide has users copy the shipped config/app.ini; here on a free port and a test key prefix.
  const shipped = await readFile(join(installed, 'config', 'app.ini'), 'utf8');
  await mkdir(join(project, 'config'), { recursive: true });
  await writeFile(join(project, 'config', 'app.ini'), shipped.replace(/^port = 3000$/m, 'port = 0').replace(/^key_prefix = .*$/m, `key_prefix = ${prefix}`));

  const child = spawn(process.execPath, [server], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let log = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the example did not listen within 20 s:\n${log}`)), 20_000);
      const read = (chunk: Buffer) => {
        log += chunk.toString('utf8');
        const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
        if (match !== null) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
      void exited.then(() => reject(new Error(`the example exited:\n${log}`)));
    });

    const first = await fetch(`${url}/hello`);
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), { hello: 'stranger', visits: 1 });
    const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
    assert.match(cookie, /^dmsession=/);
    const renamed = await fetch(`${url}/name`, { method: 'PUT', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Ada' }) });
    assert.deepEqual([renamed.status, await renamed.json()], [200, { name: 'Ada' }]);
    const second = await fetch(`${url}/hello`, { headers: { cookie } });
    assert.deepEqual([second.status, await second.json()], [200, { hello: 'Ada', visits: 2 }]);
    const bad = await fetch(`${url}/name`, { method: 'PUT', headers: { cookie, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'ERR_VALIDATION');
  } finally {
    child.kill('SIGTERM');
  }
  const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 10_000).unref())]);
  if (code === 'still running') child.kill('SIGKILL');
  assert.equal(code, 0, `exit after SIGTERM:\n${log}`);
});

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000).unref())]);
  if (!done) child.kill('SIGKILL');
}

/**
 * The fresh app as a fastify team writes it, the shipped docs examples beside it, and tsc with
 * `strict` and skipLibCheck off (tsc's default), as the project's own `npx tsc` would run.
 */
async function typeCheckProject(): Promise<Run> {
  await writeFile(
    join(project, 'app.ts'),
    `import fastifyWebsocket from '@fastify/websocket';
import Fastify from 'fastify';
import { pino } from 'pino';
import { createKeepsake, SessionReadOnlyError, type Connection, type Session, type WebSocketController } from 'keepsake';

declare module 'keepsake' {
  interface SessionValues { visits: number }
}

// The app's own logger, to a file its operators (and this test) read.
const logger = pino({ level: 'debug' }, pino.destination({ dest: process.env.LOG_FILE!, sync: true }));
const app = Fastify({ loggerInstance: logger });
await app.register(fastifyWebsocket); // the app's own, registered before keepsake

const keepsake = await createKeepsake({
  session: { key_prefix: process.env.PREFIX! },
  redis_connection_pool: {
    default: { host: '127.0.0.1', port: Number(process.env.REDIS_PORT), acquire_timeout_ms: 300, command_timeout_ms: 300, connect_timeout_ms: 300 },
  },
});
app.addHook('onClose', () => keepsake.close());
await app.register(keepsake.plugin);

class VisitsSocket implements WebSocketController {
  onOpen(conn: Connection): void {
    conn.send({ visits: conn.session.data.get('visits') ?? 0 });
  }
}
await app.register(keepsake.websocket, { routes: { '/ws': new VisitsSocket() } });

app.get('/visit', async (request) => {
  const session = await request.startSession();
  const visits: number | undefined = await session.data.update('visits', (n = 0) => n + 1);
  return { visits };
});

/** Never called: what the compiler must refuse. */
export function typeErrors(session: Session): void {
  // @ts-expect-error visits is declared a number
  session.data.put('visits', 'many');
  // @ts-expect-error internal methods are not in the published types
  session.bindUser('x');
  // @ts-expect-error the flash 'notice' is declared a string (docs/examples/controllers/session-values.ts)
  session.flash('notice', 42);
  const notice: string | undefined = session.flashed('notice');
  void notice;
}

app.get('/visits', async function (request) {
  const session = await this.sessionManager.restore(request);
  return { visits: session?.data.get('visits') ?? null, same: this.sessionManager === keepsake.sessionManager };
});

export const readOnlyCode: string = new SessionReadOnlyError('put()').code;

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
await app.listen({ host: '127.0.0.1', port: 0 });
`,
  );
  // The docs' examples travel in the package (docs/ is in "files"): check the shipped copies.
  await cp(join(installed, 'docs', 'examples'), join(project, 'examples'), { recursive: true });
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, types: ['node'], outDir: 'out' },
      include: ['app.ts', 'examples/**/*.ts'],
    }),
  );
  return run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], project);
}

async function listFiles(dir: string, suffix: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith(suffix)).map((entry) => join(entry.parentPath, entry.name));
}
